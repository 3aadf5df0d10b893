"""`pretrain/run_pretraining.py --model_type gpt2`: a causal LM trained on the very examples PoNet gets, in the same
order (the text unmasked, built by its own collator: next-token prediction), evaluated by next-token accuracy; the
pooling study's decoder backbone."""

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from transformers import AutoModel, AutoTokenizer

from ponet_training.data import minilm
from ponet_training.tasks.pretraining.evaluation import evaluate_pretraining
from ponet_training.tasks.pretraining.objectives import build_pretraining_model, objective
from ponet_training.tasks.pretraining.collators import (DataCollatorForCausalPretraining,
                                                        DataCollatorForPoNetPretraining, pretraining_collator)


REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "The plot moves slowly, but the last act is worth the wait.",
    "An overlong film that never finds its voice.",
    "She gives the best performance of her career here.",
    "Funny, warm and surprisingly sad.",
    "The sequel repeats every joke of the first film, only louder.",
    "A quiet study of a family in crisis.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm.minilm_path())  # the real bert-base-uncased vocabulary


def size_args(**overrides):
    base = dict(model_type="gpt2", model_name_or_path=None, config_name=None, trust_remote_code=False,
                hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                max_position_embeddings=None, max_seq_length=64)
    return Namespace(**{**base, **overrides})


def sso_features(tokenizer):
    """SSO-like examples: the text, token types, a segment id per token and an SSO label."""
    return [{"input_ids": ids, "token_type_ids": [0] * len(ids), "segment_ids": [0] * len(ids),
             "sentence_structural_label": i % 3} for i, ids in enumerate(tokenizer(SENTENCES)["input_ids"])]


def masked_batch(tokenizer, seed=0):
    features = sso_features(tokenizer)
    collator = DataCollatorForPoNetPretraining(tokenizer, mlm_probability=0.4, seed=seed)
    return collator(features), collator.pad(features)


def causal_batch(tokenizer):
    return DataCollatorForCausalPretraining(tokenizer)(sso_features(tokenizer))


def test_causal_inputs_are_the_text_before_masking_labelled_except_padding(tokenizer):
    batch, unmasked = masked_batch(tokenizer)
    assert (batch["input_ids"] != unmasked["input_ids"]).any()  # the MLM batch is masked ...
    inputs = causal_batch(tokenizer)
    assert set(inputs) == {"input_ids", "attention_mask", "labels"}  # no token types: GPT-2 would embed them
    torch.testing.assert_close(inputs["input_ids"], unmasked["input_ids"])  # ... the causal LM reads the text
    torch.testing.assert_close(inputs["attention_mask"], unmasked["attention_mask"])
    padding = unmasked["attention_mask"] == 0
    assert padding.any()
    assert (inputs["labels"][padding] == -100).all()
    torch.testing.assert_close(inputs["labels"][~padding], unmasked["input_ids"][~padding])
    assert type(pretraining_collator("clm", tokenizer, None, seed=0)) is DataCollatorForCausalPretraining


def test_the_masked_lm_baseline_gets_the_same_masks_without_ponets_sso_inputs(tokenizer):
    batch, _ = masked_batch(tokenizer, seed=5)
    assert {"segment_ids", "sentence_structural_label"} <= set(batch)
    args = Namespace(mlm_probability=0.4, whole_word_masking=False)
    baseline = pretraining_collator("mlm", tokenizer, args, seed=5)(sso_features(tokenizer))
    assert set(baseline) == set(batch) - {"segment_ids", "sentence_structural_label"}
    for key in baseline:
        torch.testing.assert_close(baseline[key], batch[key], rtol=0, atol=0)
    with pytest.raises(ValueError, match="Unknown pretraining objective 'mlm_sso'"):
        pretraining_collator("mlm_sso", tokenizer, args, seed=5)


def test_gpt2_from_scratch_matches_the_tokenizer_and_the_size_flags(tokenizer):
    model = build_pretraining_model(size_args(), tokenizer)
    config = model.config
    assert objective(model) == "clm" and config.model_type == "gpt2"
    assert (config.vocab_size, config.n_embd, config.n_layer, config.n_head, config.n_inner) == (len(tokenizer), 32, 2, 2, 48)
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (
        tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id)
    assert objective(build_pretraining_model(size_args(model_type="bert"), tokenizer)) == "mlm"


def test_a_model_type_with_no_language_model_head_is_refused(tokenizer):
    with pytest.raises(ValueError, match="--model_type clip has neither a masked-LM nor a causal-LM head"):
        build_pretraining_model(size_args(model_type="clip"), tokenizer)


def test_next_token_accuracy_against_a_naive_count(tokenizer):
    torch.manual_seed(0)
    model = build_pretraining_model(size_args(), tokenizer).eval()
    _, unmasked = masked_batch(tokenizer, seed=3)
    metrics = evaluate_pretraining(model, [causal_batch(tokenizer)], Accelerator(cpu=True))
    model.eval()  # evaluate_pretraining hands the model back in training mode

    correct = total = 0
    loss = 0.0
    with torch.no_grad():
        for ids, mask in zip(unmasked["input_ids"], unmasked["attention_mask"]):
            tokens = ids[mask.bool()]  # right padding: the real tokens come first
            logits = model(input_ids=tokens[None]).logits[0]
            for i in range(len(tokens) - 1):
                correct += int(logits[i].argmax() == tokens[i + 1])
                loss += torch.nn.functional.cross_entropy(logits[i], tokens[i + 1]).item()
                total += 1
    assert metrics["predicted_tokens"] == total
    assert metrics["clm_accuracy"] == pytest.approx(correct / total)
    # unpadded rows one by one (other GEMM shapes), summed in float64 here: ~8 eps sqrt(64) of the logits per token,
    # amplified by the softmax of 300 logits; rel 1e-4 is a bound relative to the loss, never absolute
    assert metrics["clm_loss"] == pytest.approx(loss / total, rel=1e-4)
    assert "mlm_accuracy" not in metrics and "sso_accuracy" not in metrics


def test_run_pretraining_trains_a_gpt2_that_automodel_loads(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    documents = [" ".join(SENTENCES[i:] + SENTENCES[:i]) for i in range(len(SENTENCES))]
    for name in ("train.jsonl", "validation.jsonl"):
        (corpus / name).write_text("".join(json.dumps({"text": d}) + "\n" for d in documents))
    output_dir = tmp_path / "gpt2"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(REPO / "pretrain" / "run_pretraining.py"), "--model_type", "gpt2",
         "--train_file", str(corpus / "train.jsonl"), "--validation_file", str(corpus / "validation.jsonl"),
         "--tokenizer_name", str(minilm.minilm_path()), "--hidden_size", "32", "--num_hidden_layers", "1",
         "--num_attention_heads", "2", "--intermediate_size", "64", "--max_seq_length", "32",
         "--per_device_train_batch_size", "4", "--max_train_steps", "4", "--eval_steps", "2",
         "--output_dir", str(output_dir)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "causal LM from scratch" in result.stderr
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["model_type"] == "gpt2" and results["train_steps"] == 4
    assert [e["step"] for e in results["eval_history"]] == [2, 4]
    assert 0.0 <= results["eval_clm_accuracy"] <= 1.0 and "eval_mlm_accuracy" not in results
    assert "Next-token accuracy" in (output_dir / "README.md").read_text()
    backbone = AutoModel.from_pretrained(output_dir)  # what the pooling study loads
    assert backbone.config.model_type == "gpt2" and backbone.config.n_inner == 64
