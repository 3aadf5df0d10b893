"""Model cards (rendered offline) and the Hub upload path (with the Hub client faked)."""

from pathlib import Path

import pytest
import yaml

from ponet_training.hub import model_cards, push
from modeling_ponet.configuration_ponet import PoNetConfig


def front_matter(text):
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_templates_ship_inside_the_package_and_in_the_repository_model_cards_folder():
    for kind in model_cards.CARD_KINDS:
        path = model_cards.template_path_for(kind)
        assert path.parent == Path(model_cards.__file__).parent / "templates"
        repo_copy = Path(__file__).resolve().parents[1] / "model_cards" / f"{kind}.md"
        assert repo_copy.read_text() == path.read_text()
    with pytest.raises(ValueError, match="Unknown model card kind 'adapter'"):
        model_cards.template_path_for("adapter")


def test_finetuned_card_states_results_in_yaml_and_body(tmp_path):
    results = model_cards.eval_results_from_metrics(
        {"eval_accuracy": 0.8123456, "eval_f1": 0.87, "eval_runtime": 3.0, "epoch": 3, "train_loss": 0.1},
        prefix="eval_", task_type="text-classification", dataset_type="nyu-mll/glue", dataset_name="GLUE MRPC",
        dataset_config="mrpc")
    path = model_cards.write_model_card(tmp_path, "finetuned", model_id="me/ponet-mrpc",
                                base_model="chtan/ponet-base-uncased", datasets=["nyu-mll/glue"],
                                eval_results=results, config=PoNetConfig(num_labels=2),
                                hyperparameters={"learning_rate": 3e-5, "hub_token": "secret", "seed": 42})
    text = path.read_text()
    meta = front_matter(text)
    assert meta["license"] == "apache-2.0" and meta["base_model"] == "chtan/ponet-base-uncased"
    assert meta["datasets"] == ["nyu-mll/glue"] and meta["metrics"] == ["accuracy", "f1"]
    entry = meta["model-index"][0]
    assert entry["name"] == "me/ponet-mrpc"
    result = entry["results"][0]
    assert result["dataset"] == {"name": "GLUE MRPC", "type": "nyu-mll/glue", "config": "mrpc", "split": "validation"}
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"accuracy": 0.8123, "f1": 0.87}
    assert "| GLUE MRPC | validation | Accuracy | 0.8123 |" in text
    assert 'from_pretrained("me/ponet-mrpc", trust_remote_code=True)' in text
    assert "secret" not in text and "| learning_rate | 3e-05 |" in text
    assert "tan2022ponet" in text


def test_pretrained_card_without_results_has_no_model_index(tmp_path):
    text = model_cards.write_model_card(tmp_path, "pretrained", model_id="me/ponet-small", datasets="wikitext",
                                config=PoNetConfig(hidden_size=64, num_attention_heads=4)).read_text()
    meta = front_matter(text)
    assert "model-index" not in meta and "model_name" not in meta
    assert meta["pipeline_tag"] == "fill-mask" and meta["tags"] == ["ponet"]
    assert "No evaluation results were recorded" in text and "| hidden_size | 64 |" in text


def test_custom_template_path_is_used(tmp_path):
    template = tmp_path / "mine.md"
    template.write_text("---\n{{ card_data }}\n---\nHello {{ model_id }} {{ greeting }}\n")
    text = model_cards.write_model_card(tmp_path / "out", "finetuned", model_id="x/y", template_path=template,
                                greeting="there").read_text()
    assert text.rstrip().endswith("Hello x/y there")


def test_push_to_hub_creates_the_repo_and_uploads_without_training_state(tmp_path, monkeypatch):
    calls = {}

    def fake_create_repo(repo_id, token=None, private=None, exist_ok=False, repo_type=None):
        calls["create"] = dict(repo_id=repo_id, token=token, private=private, exist_ok=exist_ok)
        return type("RepoUrl", (), {"repo_id": f"user/{repo_id}" if "/" not in repo_id else repo_id})()

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def upload_folder(self, **kwargs):
            calls["upload"] = kwargs
            return type("Commit", (), {"commit_url": "https://huggingface.co/user/run/commit/1"})()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "create_repo", fake_create_repo)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = tmp_path / "my-run"
    model_cards.write_model_card(out, "finetuned", model_id="my-run")
    url = push.push_to_hub(out, None, "tok", commit_message="End of training", private=True)
    assert url.endswith("/commit/1")
    assert calls["create"] == dict(repo_id="my-run", token="tok", private=True, exist_ok=True)
    assert calls["upload"]["repo_id"] == "user/my-run" and calls["upload"]["folder_path"] == out
    assert "step_*" in calls["upload"]["ignore_patterns"] and "epoch_*" in calls["upload"]["ignore_patterns"]
    with pytest.raises(FileNotFoundError, match="Nothing to push"):
        push.push_to_hub(tmp_path / "missing", "a/b")
