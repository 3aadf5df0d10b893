"""Model cards, shared by the pretraining, fine-tuning and pooling-study scripts (uploads: `hub.push`).

A script that trained something calls, on the main process:

    card = write_model_card(output_dir, "finetuned", base_model="chtan/ponet-base-uncased",
                            datasets=["nyu-mll/glue"], eval_results=eval_results_from_metrics(...),
                            hyperparameters=vars(args), config=model.config)
    if args.push_to_hub:
        push.push_to_hub(output_dir, args.hub_model_id, args.hub_token, "End of training")

The card is `README.md` in `output_dir`: YAML metadata (license, datasets, metrics, base_model, model-index
results) read by the Hub, then a markdown body rendered from a Jinja2 template. The templates ship inside the
package (`ponet_training/hub/templates/`, also reachable as the repository's `model_cards/`), so they are found
whether the package is installed editable or not; `template_path=` takes your own.

- `write_model_card(output_dir, kind, hub_model_id=None, **facts)`, `render_model_card(...)`,
  `template_path_for(kind)`; the card's title and model-index name are the repository it is pushed to
  (`push.hub_repo_id`: `--hub_model_id`, else the folder's name).
- `eval_results_from_metrics(metrics, ...)`: model-index entries.

A leaf of the library: it knows cards and the Hub, no task (a task turns its metrics into `EvalResult`s itself).
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ponet_training.hub.push import hub_repo_id


logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
CARD_KINDS = ("pretrained", "finetuned")

PONET_CITATION = """@inproceedings{tan2022ponet,
  title     = {PoNet: Pooling Network for Efficient Token Mixing in Long Sequences},
  author    = {Tan, Chao-Hong and Chen, Qian and Wang, Wen and Zhang, Qinglin and Zheng, Siqi and Ling, Zhen-Hua},
  booktitle = {International Conference on Learning Representations},
  year      = {2022},
  url       = {https://arxiv.org/abs/2110.02442}
}"""

# Pretty names for the metric keys our scripts report (anything else is shown as is).
METRIC_PRETTY_NAMES = {
    "accuracy": "Accuracy",
    "f1": "F1",
    "micro_f1": "Micro-F1",
    "macro_f1": "Macro-F1",
    "matthews_correlation": "Matthews correlation",
    "pearson": "Pearson correlation",
    "spearmanr": "Spearman correlation",
    "combined_score": "Combined score",
    "loss": "Loss",
    "perplexity": "Perplexity",
    "mlm_accuracy": "MLM accuracy",
    "sso_accuracy": "SSO accuracy",
    "mlm_loss": "MLM loss",
    "clm_accuracy": "Next-token accuracy",
    "clm_loss": "Causal LM loss",
    "sso_loss": "SSO loss",
}

# The Hub's metric ids (https://hf.co/metrics) for the keys above; the model-index `type` field.
METRIC_TYPES = {
    "spearmanr": "spearmanr",
    "pearson": "pearsonr",
    "micro_f1": "f1",
    "macro_f1": "f1",
    "combined_score": "combined_score",
}


def template_path_for(kind: str) -> Path:
    """Path of the packaged template for a card `kind` ("pretrained" or "finetuned")."""
    if kind not in CARD_KINDS:
        raise ValueError(f"Unknown model card kind {kind!r}; expected one of {', '.join(CARD_KINDS)}")
    path = TEMPLATE_DIR / f"{kind}.md"
    if not path.is_file():
        raise FileNotFoundError(
            f"Model card template {path} is missing: the package was installed without its data files "
            "(ponet_training/hub/templates/*.md); reinstall it or pass `template_path=`"
        )
    return path


def eval_results_from_metrics(
    metrics: Mapping[str, Any],
    *,
    task_type: str,
    dataset_type: str,
    dataset_name: str,
    dataset_config: str | None = None,
    dataset_split: str | None = "validation",
    task_name: str | None = None,
    prefix: str = "",
) -> list[EvalResult]:
    """Turn a flat metrics dict (e.g. `{"eval_accuracy": 0.91, "eval_f1": 0.88}`) into model-index entries.

    `prefix` (e.g. "eval_") is stripped from the keys; non-numeric values, NaNs and bookkeeping keys
    (epoch, step, runtime, samples) are skipped. `task_type` is a Hub task id ("text-classification",
    "fill-mask"), `dataset_type` a Hub dataset id ("nyu-mll/glue"), `dataset_name` a pretty name ("GLUE MRPC").
    """
    results = []
    for key, value in metrics.items():
        if prefix:
            if not key.startswith(prefix):
                continue
            key = key[len(prefix):]
        if key in ("epoch", "step", "runtime", "samples", "samples_per_second", "steps_per_second"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            continue
        results.append(
            EvalResult(
                task_type=task_type,
                task_name=task_name,
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_config=dataset_config,
                dataset_split=dataset_split,
                metric_type=METRIC_TYPES.get(key, key),
                metric_name=METRIC_PRETTY_NAMES.get(key, key),
                metric_value=round(float(value), 4),
            )
        )
    return results


def _framework_versions() -> dict[str, str]:
    versions = {}
    for name in ("modeling_ponet", "transformers", "torch", "accelerate", "datasets", "tokenizers"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _architecture_facts(config) -> dict[str, Any]:
    """The config fields a reader of the card wants to see (size, positions, segments)."""
    if config is None:
        return {}
    names = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "max_position_embeddings", "vocab_size", "local_window_size", "segment_size", "clsgsepg",
             "classifier_pooling", "num_labels", "problem_type")
    facts = {}
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            facts[name] = value
    return facts


def _as_list(value) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def render_model_card(
    kind: str,
    *,
    model_id: str | None = None,
    base_model: str | list[str] | None = None,
    base_model_name: str | None = None,
    datasets: str | Iterable[str] | None = None,
    eval_results: Iterable[EvalResult] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    config=None,
    license: str = "apache-2.0",
    language: str | list[str] | None = "en",
    tags: Iterable[str] | None = None,
    pipeline_tag: str | None = None,
    model_summary: str | None = None,
    training_data: str | None = None,
    extra_results_markdown: str | None = None,
    template_path: str | os.PathLike | None = None,
    **template_kwargs,
) -> ModelCard:
    """Render a model card without writing it (see `write_model_card` for the arguments)."""
    path = Path(template_path) if template_path is not None else template_path_for(kind)
    eval_results = list(eval_results or [])
    model_type = getattr(config, "model_type", None)
    all_tags = ["ponet"] if model_type == "ponet" else []
    all_tags += [tag for tag in (tags or []) if tag not in all_tags]
    if pipeline_tag is None:
        pipeline_tag = "fill-mask" if kind == "pretrained" else "text-classification"
    metrics = sorted({result.metric_type for result in eval_results}) or None
    card_data = ModelCardData(
        license=license,
        language=language,
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=all_tags or None,
        datasets=_as_list(datasets),
        metrics=metrics,
        base_model=base_model,
        # model-index needs a name; without results the key would only clutter the metadata.
        model_name=(model_id or "ponet") if eval_results else None,
        eval_results=eval_results or None,
    )
    results_rows = [
        {
            "dataset": result.dataset_name,
            "split": result.dataset_split or "",
            "metric": result.metric_name or result.metric_type,
            "value": _format_value(result.metric_value),
        }
        for result in eval_results
    ]
    hyperparameters = {
        key: _format_value(value)
        for key, value in (hyperparameters or {}).items()
        if value is not None and not key.startswith("hub_") and key != "push_to_hub"
    }
    return ModelCard.from_template(
        card_data,
        template_path=str(path),
        model_id=model_id or "ponet",
        base_model=base_model,
        model_summary=model_summary,
        training_data=training_data,
        results=results_rows,
        extra_results_markdown=extra_results_markdown,
        hyperparameters=hyperparameters,
        base_model_name=base_model_name or base_model,
        architecture=_architecture_facts(config),
        model_type=model_type,
        is_ponet=model_type == "ponet",
        trust_remote_code=model_type == "ponet",
        framework_versions=_framework_versions(),
        citation=PONET_CITATION,
        **template_kwargs,
    )


def write_model_card(output_dir: str | os.PathLike, kind: str, hub_model_id: str | None = None, **facts) -> Path:
    """Render the `kind` ("pretrained" or "finetuned") card and write it to `output_dir/README.md`.

    `hub_model_id`: the repository the folder is pushed to; the card's title and model-index name are
    `push.hub_repo_id(output_dir, hub_model_id)` (the folder's name without one), unless `model_id` is given.

    Keyword facts (all optional):
        model_id: the Hub id or name shown in the title and model-index.
        base_model: Hub id the model was fine-tuned from (e.g. "chtan/ponet-base-uncased").
        base_model_name: how the card's text names the base model (default: `base_model`; see
            `base_model_reference` for a local folder, which is no Hub id).
        datasets: Hub dataset ids (e.g. ["nyu-mll/glue"]).
        eval_results: `huggingface_hub.EvalResult`s, e.g. from `eval_results_from_metrics`; they go to the
            YAML model-index and to the results table.
        hyperparameters: mapping shown as a table (e.g. `vars(args)`; `hub_*` entries are left out).
        config: the model config (architecture facts, and `trust_remote_code` in the usage snippet for PoNet).
        license, language, tags, pipeline_tag: YAML metadata.
        model_summary, training_data, extra_results_markdown: free text for the body.
        template_path: a Jinja2 markdown template of your own instead of the packaged one.
        Anything else is passed to the template.
    Returns the path of the written README.md.
    """
    facts["model_id"] = facts.get("model_id") or hub_repo_id(output_dir, hub_model_id)
    card = render_model_card(kind, **facts)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "README.md"
    card.save(path)
    logger.info("Wrote the %s model card to %s", kind, path)
    return path


def base_model_reference(name_or_path: str | None, config=None) -> tuple[str | None, str | None]:
    """(Hub id for the card's `base_model` metadata, name for its text) of `--model_name_or_path`.

    A Hub id is both. A local folder is no Hub id: the metadata gets the Hub id its config was loaded under
    (`config._name_or_path`, when that is not a local path too), and the text names it, or the folder.
    """
    if not name_or_path:
        return None, None
    if not os.path.exists(name_or_path):
        return name_or_path, name_or_path
    recorded = str(getattr(config, "_name_or_path", "") or "")
    if recorded and not os.path.exists(recorded):
        return recorded, recorded
    return None, f"{Path(name_or_path).resolve().name} (a local folder)"


__all__ = [
    "CARD_KINDS",
    "base_model_reference",
    "PONET_CITATION",
    "TEMPLATE_DIR",
    "eval_results_from_metrics",
    "render_model_card",
    "template_path_for",
    "write_model_card",
]
