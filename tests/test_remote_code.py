"""transformers integration: Auto classes, save_pretrained with remote code and a full auto_map, loading with
`trust_remote_code=True` where this package cannot be imported, tokenizer, pipelines."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

import modeling_ponet as mp
from tolerance import assert_close
from without_package import AUTO_HEADS, auto_class_inputs, load_without_this_package, saved_model_case


def test_auto_classes_resolve_to_ponet(tiny_config):
    config = tiny_config(classifier_pooling="mean+max")
    assert isinstance(AutoConfig.for_model("ponet"), mp.PoNetConfig)
    assert isinstance(AutoModel.from_config(config), mp.PoNetModel)
    assert isinstance(AutoModelForSequenceClassification.from_config(config), mp.PoNetForSequenceClassification)
    assert isinstance(AutoModelForMaskedLM.from_config(config), mp.PoNetForMaskedLM)


def test_save_pretrained_writes_safetensors_code_and_full_auto_map(tiny_config, tmp_path):
    mp.PoNetForSequenceClassification(tiny_config()).save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"model.safetensors", "config.json", "configuration_ponet.py", "modeling_ponet.py", "pooling.py"} <= files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "ponet"
    assert config["auto_map"] == mp.PONET_AUTO_MAP
    for code_file in ("configuration_ponet.py", "modeling_ponet.py", "pooling.py"):
        source = (tmp_path / code_file).read_text()
        imports = [line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))]
        assert all(name.split(".")[0] in {"math", "dataclasses", "types", "torch", "transformers", ""} for name in imports), (
            code_file, imports)


def saved_auto_class_cases(tiny_config, tiny_tokenizer, tmp_path):
    """One saved folder per Auto class, with the package's output on a padded two-sentence batch."""
    ids = torch.tensor([[2, 10, 11, 3, 12, 3, 0, 0], [2, 20, 21, 22, 3, 23, 24, 3]])
    mask = (ids != 0).long()
    cases = []
    for auto_name, head in AUTO_HEADS.items():
        model = head(tiny_config(num_labels=3, classifier_pooling="cls+attention"))
        cases.append(saved_model_case(auto_name, model, auto_class_inputs(head, ids, mask), tmp_path / auto_name))
        tiny_tokenizer.save_pretrained(tmp_path / auto_name)
    return cases


def fresh_init_cases(cases):
    """(Auto class name, folder, the package's freshly initialised state dict from seed 0) per saved folder."""
    init_cases = []
    for auto_name, folder, *_ in cases:
        torch.manual_seed(0)
        head = AUTO_HEADS[auto_name](mp.PoNetConfig.from_pretrained(folder))
        init_cases.append((auto_name, folder, head.state_dict()))
    return init_cases


def load_every_auto_class_without_this_package(tiny_config, tiny_tokenizer, tmp_path, python=sys.executable) -> str:
    """Saved folders through all 7 Auto classes, a fresh initialisation of each, and the tokenizer, in `python`."""
    cases = saved_auto_class_cases(tiny_config, tiny_tokenizer, tmp_path)
    texts = ("the quick fox", "python is fast")
    tokenizer_case = (cases[0][1], texts, dict(tiny_tokenizer(*texts)))
    stdout = load_without_this_package(cases, [tokenizer_case], tmp_path, python=python,
                                       init_cases=fresh_init_cases(cases))
    assert "TOKENIZER BertTokenizer" in stdout
    return stdout


def test_every_auto_class_loads_with_trust_remote_code_without_this_package(tiny_config, tiny_tokenizer, tmp_path):
    load_every_auto_class_without_this_package(tiny_config, tiny_tokenizer, tmp_path)


# A venv with the last transformers 4.x whose torch comes from this environment; run_tests.sh creates it.
TRANSFORMERS4_VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ponet-tests" / "transformers-4.57.6-venv"


def test_every_auto_class_loads_on_transformers_4_without_this_package(tiny_config, tiny_tokenizer, tmp_path):
    python = TRANSFORMERS4_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no transformers 4.57.6 venv at {TRANSFORMERS4_VENV}: `bash run_tests.sh` creates it")
    stdout = load_every_auto_class_without_this_package(tiny_config, tiny_tokenizer, tmp_path, python=str(python))
    assert "TRANSFORMERS 4.57.6" in stdout


def test_auto_tokenizer_loads_from_a_saved_ponet_folder(tiny_config, tiny_tokenizer, tmp_path):
    mp.PoNetModel(tiny_config()).save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer("the quick fox")["input_ids"] == tiny_tokenizer("the quick fox")["input_ids"]
    assert tokenizer.cls_token_id == tiny_config().cls_token_id


@pytest.fixture
def saved_heads(tiny_config, tiny_tokenizer, tmp_path):
    folders = {}
    for name, head in (("mlm", mp.PoNetForMaskedLM), ("base", mp.PoNetModel), ("cls", mp.PoNetForSequenceClassification)):
        config = tiny_config(num_labels=2, id2label={0: "negative", 1: "positive"},
                             label2id={"negative": 0, "positive": 1})
        head(config).save_pretrained(tmp_path / name)
        tiny_tokenizer.save_pretrained(tmp_path / name)
        folders[name] = str(tmp_path / name)
    return folders


def test_fill_mask_pipeline(saved_heads, tiny_tokenizer):
    fill = pipeline("fill-mask", model=saved_heads["mlm"], device="cpu")
    predictions = fill("the quick [MASK] jumps", top_k=3)
    assert len(predictions) == 3
    assert all(p["token"] < len(tiny_tokenizer) and "[MASK]" not in p["sequence"] for p in predictions)
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True)


def test_feature_extraction_pipeline_matches_the_model(saved_heads, tiny_tokenizer):
    extract = pipeline("feature-extraction", model=saved_heads["base"], device="cpu")
    features = torch.tensor(extract("python is a programming language")[0])
    model = AutoModel.from_pretrained(saved_heads["base"]).eval()
    with torch.no_grad():
        expected = model(**tiny_tokenizer("python is a programming language", return_tensors="pt")).last_hidden_state[0]
    assert features.shape == expected.shape
    assert_close(features, expected, reduction=model.config.intermediate_size)


def test_text_classification_pipeline_uses_the_label_names(saved_heads):
    classify = pipeline("text-classification", model=saved_heads["cls"], device="cpu")
    results = classify(["the movie was great", "the movie was terrible and boring"])
    assert [r["label"] in {"negative", "positive"} for r in results] == [True, True]
    assert all(0.0 < r["score"] <= 1.0 for r in results)
