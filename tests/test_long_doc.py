"""finetune/run_long_doc.py: position tiling, sentence-level segment ids, metrics, errors."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score, f1_score

from conftest import TOY_CORPUS, finetune_script, save_tiny_ponet
from ponet_training.tasks import long_documents as L
from ponet_training.data.segments import sentence_spans, tokenize_with_segment_ids


ROOT = Path(__file__).resolve().parents[1]
run_long_doc = finetune_script("run_long_doc")

SENTENCES = ["The dog sleeps all day.", "A fox is quick.", "Rivers flow to the sea.",
             "Mountains rise above the clouds.", "The weather changes quickly.", "Tests keep code honest."]


@pytest.fixture(scope="module")
def checkpoint_512(tmp_path_factory):
    return save_tiny_ponet(tmp_path_factory.mktemp("tiny_ponet_512"), TOY_CORPUS * 4, max_position_embeddings=512)


def write_docs(path, n, seed, sentences_per_doc=70):
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for i in range(n):
            label = ["neg", "pos"][i % 2]
            text = " ".join(rng.choice(SENTENCES) for _ in range(sentences_per_doc))
            handle.write(json.dumps({"text": text + (" I loved it." if label == "pos" else " I hated it."),
                                     "label": label}) + "\n")
    return path


def test_long_run_at_1024_from_a_512_position_checkpoint_tiles_the_position_table(checkpoint_512, tmp_path, caplog):
    files = {split: write_docs(tmp_path / f"{split}.jsonl", n, seed)
             for split, n, seed in (("train", 8, 0), ("dev", 6, 1), ("test", 6, 2))}
    out = tmp_path / "out"
    # Learning rate 0: the saved table is exactly what the tiling produced.
    results = run_long_doc.main(["--model_name_or_path", str(checkpoint_512), "--train_file", str(files["train"]),
                                 "--validation_file", str(files["dev"]), "--test_file", str(files["test"]),
                                 "--max_length", "1024", "--output_dir", str(out), "--learning_rate", "0",
                                 "--per_device_train_batch_size", "4", "--max_train_steps", "1"])
    assert "Extended the position table from 512 to 1024 rows by tiling" in caplog.text
    original = load_file(checkpoint_512 / "model.safetensors")["ponet.embeddings.position_embeddings.weight"]
    tiled = load_file(out / "model.safetensors")["ponet.embeddings.position_embeddings.weight"]
    assert tiled.shape == (1024, 32)
    assert torch.equal(tiled[:512], original) and torch.equal(tiled[512:], original)  # copied rows: exact
    assert json.loads((out / "config.json").read_text())["max_position_embeddings"] == 1024
    assert results["max_position_embeddings"] == 1024 and results["gradient_checkpointing"] is True
    assert results["segment_level"] == "sentence"
    # The reported metrics are those of the saved predictions.
    for split, prefix in (("validation", "eval"), ("test", "test")):
        rows = [line.split("\t") for line in (out / "predictions" / f"{split}.tsv").read_text().splitlines()[1:]]
        preds, refs = np.array([int(r[1]) for r in rows]), np.array([int(r[2]) for r in rows])
        assert results[f"{prefix}_accuracy"] == pytest.approx(accuracy_score(refs, preds))
        assert results[f"{prefix}_macro_f1"] == pytest.approx(f1_score(refs, preds, average="macro", labels=[0, 1],
                                                                       zero_division=0))
        assert results[f"{prefix}_f1"] == pytest.approx(f1_score(refs, preds, zero_division=0))
    card = (out / "README.md").read_text()
    assert "1024 tokens" in card and "test" in card


def test_documents_longer_than_512_tokens_run_through_the_tiled_model(checkpoint_512):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint_512)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint_512, num_labels=2)
    assert L.extend_positions(model, 1024)
    assert not L.extend_positions(model, 600)  # already long enough
    text = " ".join(SENTENCES * 20)
    encoding = tokenize_with_segment_ids(tokenizer, [text], truncation=True, max_length=1024)
    assert 512 < len(encoding["input_ids"][0]) <= 1024
    batch = L.LongDocCollator(tokenizer)([{k: v[0] for k, v in encoding.items()}])
    with torch.no_grad():
        assert model(**batch).logits.shape == (1, 2)


def test_segment_ids_follow_sentence_boundaries_and_pad_as_one_more_segment(checkpoint_512):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint_512)
    texts = [" ".join(SENTENCES[:3]), " ".join(SENTENCES[3:])]
    encoding = tokenize_with_segment_ids(tokenizer, texts, truncation=True, max_length=1024)
    features = [{key: encoding[key][i] for key in encoding} for i in range(2)]
    batch = L.LongDocCollator(tokenizer)([dict(f) for f in features])
    width = batch["input_ids"].shape[1]
    for row, text in enumerate(texts):
        spans = sentence_spans(text)
        assert len(spans) == 3
        plain = tokenizer(text, return_offsets_mapping=True)
        length = len(plain["input_ids"])
        segments = batch["segment_ids"][row].tolist()
        # [CLS] = 0, sentence k = k + 1, [SEP] = 4: each token's segment is the sentence its characters are in.
        expected = [0]
        for start, end in plain["offset_mapping"][1:-1]:
            expected.append(1 + next(k for k, (s, e) in enumerate(spans) if s <= start < e))
        expected.append(len(spans) + 1)
        assert segments[:length] == expected
        assert segments[length:] == [len(spans) + 2] * (width - length)
        assert batch["attention_mask"][row].sum().item() == length


def test_long_doc_errors_are_clear(checkpoint_512, tmp_path):
    with pytest.raises(ValueError, match="Unknown long-document dataset 'wiki'.*hnd, imdb, yelp5, arxiv11"):
        run_long_doc.main(["--dataset", "wiki", "--model_name_or_path", str(checkpoint_512)])
    train = write_docs(tmp_path / "train.jsonl", 4, 0, sentences_per_doc=2)
    bad = tmp_path / "dev.jsonl"
    bad.write_text(json.dumps({"text": "A fox is quick.", "label": "neutral"}) + "\n")
    with pytest.raises(ValueError, match="outside the label set.*neutral"):
        run_long_doc.main(["--train_file", str(train), "--validation_file", str(bad),
                           "--model_name_or_path", str(checkpoint_512)])
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['body'\]"):
        run_long_doc.main(["--train_file", str(train), "--text_column", "body",
                           "--model_name_or_path", str(checkpoint_512)])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        run_long_doc.main(["--train_file", str(empty), "--model_name_or_path", str(checkpoint_512)])


def test_presets_match_the_paper():
    assert L.get_long_doc_dataset("arXiv-11").segment_level == "paragraph"
    assert L.get_long_doc_dataset("arxiv11").num_labels == 11
    assert L.get_long_doc_dataset("hnd").main_metric == "f1" and L.get_long_doc_dataset("imdb").main_metric == "f1"
    assert L.get_long_doc_dataset("yelp5").num_labels == 5
    assert L.strip_html("<p>One &amp; two.</p><p>Three<br />four.</p>") == "One & two.\n\nThree\n\nfour."


def test_local_tables_are_read_as_written_and_1_or_1_0_labels_are_two_classes(tmp_path):
    """A pandas tsv of documents with paragraphs (line breaks) and tabs, labels written 1, 1.0 and 0: every document
    one row, two classes."""
    import pandas as pd

    documents = pd.DataFrame({
        "label": ["1", "1.0", "0", "0", " 1 "],
        "text": ["First paragraph.\n\nSecond\tparagraph.", "One line.", "Table:\ta\tb\nrow\t1\t2", "Plain.",
                 'He said "no".\n'],
    })
    documents.to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    splits, names = L.load_local_long_docs({"train": tmp_path / "train.tsv"})
    assert names == ["0", "1"]
    assert splits["train"]["text"] == list(documents["text"])
    assert splits["train"]["label"] == [1, 1, 0, 0, 1]
