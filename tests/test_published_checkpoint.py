"""The published checkpoint as users meet it (a local copy of `chtan/ponet-base-uncased` in its own layout, see
tests/fixtures/published_checkpoint.py): its tokenizer with the package imported and no remote code, its models on
sentence pairs against the naive reference of the published arithmetic, pipelines, and re-sharing it."""

import json

import pytest
import torch
from tolerance import assert_close
from conftest import naive_forward
from without_package import AUTO_HEADS, auto_class_inputs, load_without_this_package, saved_model_case
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertTokenizerFast,
    pipeline,
)

import modeling_ponet as mp


SINGLES = ["The quick brown fox jumps over the lazy dog.", "PoNet mixes tokens by pooling!"]
PAIRS = (["How old are you?", "Unbelievable, isn't it"], ["I'm six years old.", "Pooling networks are fast."])


@pytest.fixture(scope="module")
def tokenizers(published_repo):
    return AutoTokenizer.from_pretrained(published_repo), BertTokenizerFast.from_pretrained(published_repo)


def test_auto_tokenizer_without_remote_code_is_berts_tokenizer(tokenizers):
    auto, bert = tokenizers
    assert isinstance(auto, mp.PoNetTokenizerFast)
    assert (auto.cls_token_id, auto.sep_token_id, auto.pad_token_id, len(auto)) == (101, 102, 0, 30522)
    for texts in ([SINGLES], PAIRS):
        got = auto(*texts, padding=True)
        expected = bert(*texts, padding=True)
        assert set(got) == {"input_ids", "token_type_ids", "attention_mask"}
        for key in got:
            assert got[key] == expected[key], key
    pair = auto(*PAIRS)
    assert all(0 < sum(types) < len(types) for types in pair["token_type_ids"])  # sentence B really is type 1


def pair_batch(tokenizer):
    return tokenizer(*PAIRS, padding=True, return_tensors="pt")


def test_published_weights_load_under_their_names(published_repo):
    model, info = AutoModelForPreTraining.from_pretrained(published_repo, output_loading_info=True)
    assert isinstance(model, mp.PoNetForPreTraining)
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["unexpected_keys"]
    assert model.cls.predictions.decoder.weight.data_ptr() == model.ponet.embeddings.word_embeddings.weight.data_ptr()
    published = torch.load(published_repo / "pytorch_model.bin", weights_only=True)
    assert torch.equal(model.ponet.encoder.layer[1].attention.self.dense_local.weight,
                       published["ponet.encoder.layer.1.attention.self.dense_local.weight"])


def test_models_on_sentence_pairs_match_the_published_arithmetic(published_repo, tokenizers):
    batch = pair_batch(tokenizers[0])
    base = AutoModel.from_pretrained(published_repo).eval()
    pretraining = AutoModelForPreTraining.from_pretrained(published_repo).eval()
    classifier = AutoModelForSequenceClassification.from_pretrained(published_repo, num_labels=3).eval()
    assert isinstance(base, mp.PoNetModel) and isinstance(classifier, mp.PoNetForSequenceClassification)
    real = batch["attention_mask"].bool()
    longest_sum = base.config.intermediate_size  # sets the float tolerance (tests/tolerance.py)
    with torch.no_grad():
        reference = naive_forward(base, batch["input_ids"], batch["attention_mask"],
                                  token_type_ids=batch["token_type_ids"])[0]
        pooled = base.pooler(reference)
        out = base(**batch)
        assert_close(out.last_hidden_state[real], reference[real], reduction=longest_sum)
        assert_close(out.pooler_output, pooled, reduction=longest_sum)

        heads = pretraining(**batch)
        mlm = pretraining.cls.predictions(reference)
        assert_close(heads.prediction_logits[real], mlm[real], reduction=longest_sum)
        assert_close(heads.seq_relationship_logits, pretraining.cls.seq_relationship(pooled), reduction=longest_sum)

        logits = classifier(**batch).logits
        assert_close(logits, classifier.classifier(pooled), reduction=longest_sum)

        # token types matter: without them (as a tokenizer without token_type_ids would give) the output differs
        no_types = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        assert (no_types - reference)[real].abs().max() > 1e-2


def test_fill_mask_and_feature_extraction_pipelines(published_repo, tokenizers):
    fill = pipeline("fill-mask", model=str(published_repo), device="cpu")
    predictions = fill("the capital of france is [MASK].", top_k=4)
    assert len(predictions) == 4 and all("[MASK]" not in p["sequence"] for p in predictions)
    assert [p["score"] for p in predictions] == sorted((p["score"] for p in predictions), reverse=True)

    extract = pipeline("feature-extraction", model=str(published_repo), device="cpu")
    features = torch.tensor(extract(SINGLES[0])[0])
    model = AutoModel.from_pretrained(published_repo).eval()
    with torch.no_grad():
        expected = model(**tokenizers[1](SINGLES[0], return_tensors="pt")).last_hidden_state[0]
    assert features.shape == expected.shape
    assert_close(features, expected, reduction=model.config.intermediate_size)


def test_a_config_from_the_published_folder_saves_the_full_auto_map(published_repo, tmp_path):
    config = mp.PoNetConfig.from_pretrained(published_repo)
    assert len(json.loads((published_repo / "config.json").read_text())["auto_map"]) == 4
    config.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["auto_map"] == mp.PONET_AUTO_MAP


def test_resharing_the_published_checkpoint_loads_without_this_package(published_repo, tokenizers, tmp_path):
    tokenizer = tokenizers[0]
    batch = pair_batch(tokenizer)
    cases = []
    for auto_name, head in AUTO_HEADS.items():
        model = head.from_pretrained(published_repo, num_labels=2).eval()
        inputs = auto_class_inputs(head, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        folder = tmp_path / auto_name
        cases.append(saved_model_case(auto_name, model, inputs, folder))
        tokenizer.save_pretrained(folder)
        saved_config = json.loads((folder / "config.json").read_text())
        assert saved_config["auto_map"] == mp.PONET_AUTO_MAP
    tokenizer_config = json.loads((tmp_path / "AutoModel" / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "BertTokenizer" and "auto_map" not in tokenizer_config

    expected_encoding = {key: value for key, value in tokenizers[1](*PAIRS).items()}
    stdout = load_without_this_package(cases, [(cases[0][1], PAIRS, expected_encoding)], tmp_path)
    assert "TOKENIZER BertTokenizer" in stdout


def test_trust_remote_code_with_the_package_installed_uses_the_package_for_config_and_models(published_repo):
    # the fixture has no code files: remote code would fail to load, so these come from the package
    assert type(AutoConfig.from_pretrained(published_repo, trust_remote_code=True)) is mp.PoNetConfig
    model = AutoModelForPreTraining.from_pretrained(published_repo, trust_remote_code=True)
    assert type(model) is mp.PoNetForPreTraining
