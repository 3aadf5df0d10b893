"""The pooling study's defaults, file names and record layout, and `RunSpec`, one cell of the sweep.

- `DEFAULT_BACKBONES`, `REGIMES`, `DEFAULT_SEEDS`, `METRICS`, `HUB_DATASETS`, `TEXT_COLUMN_CANDIDATES`.
- `RESULTS_CSV`, `TABLE_MD`, `FIGURE_PNG`, `SETTINGS_JSON`, `CSV_COLUMNS`, `RUN_KEY`.
- `RunSpec`, `display_name(backbone)`.
"""

import os
from dataclasses import dataclass


DEFAULT_BACKBONES = ("chtan/ponet-base-uncased", "bert-base-uncased", "gpt2")
REGIMES = ("frozen", "full")
DEFAULT_SEEDS = (42, 43, 44)
METRICS = ("accuracy", "f1", "macro_f1")

# Shortcuts for the two sentiment datasets of the study: (Hub id, config, text column, evaluation split).
HUB_DATASETS = {
    "sst2": ("nyu-mll/glue", "sst2", "sentence", "validation"),
    "imdb": ("stanfordnlp/imdb", None, "text", "test"),
}
# The human-rated sentences of Hutto & Gilbert (2014), prepared from the vaderSentiment sdist (`ponet_training.data.vader`):
# preset name -> domain. Evaluated on the dev split; the test split stays unseen.
VADER_PRESETS = {f"vader_{domain}": domain for domain in ("movies", "tweets", "amazon", "nyt")}
TEXT_COLUMN_CANDIDATES = ("sentence", "text", "review", "content", "document")

RESULTS_CSV = "pooling_study.csv"
TABLE_MD = "pooling_study.md"
FIGURE_PNG = "pooling_study.png"
SETTINGS_JSON = "study_settings.json"
CSV_COLUMNS = (
    "backbone", "regime", "pooling", "seed",
    "accuracy", "f1", "macro_f1", "eval_loss", "train_loss", "majority_baseline",
    "num_train_examples", "num_eval_examples", "train_steps", "learning_rate", "trainable_parameters",
    "train_time_s", "eval_time_s", "finished_at",
)
RUN_KEY = ("backbone", "regime", "pooling", "seed")
BASELINES_JSON = "study_baselines.json"
# A backbone built from a config with random weights (`--config_name`) is recorded under this prefix.
RANDOM_INIT_PREFIX = "random-init:"


@dataclass(frozen=True)
class RunSpec:
    """One cell of the sweep."""

    backbone: str
    regime: str
    pooling: str
    seed: int

    def key(self) -> tuple[str, str, str, str]:
        return (self.backbone, self.regime, self.pooling, str(self.seed))

    def __str__(self) -> str:
        return f"backbone={self.backbone} regime={self.regime} pooling={self.pooling} seed={self.seed}"


def display_name(backbone: str) -> str:
    """A short name for tables: the folder name of a local path, the Hub id as it is otherwise; a random-init
    backbone says so."""
    if backbone.startswith(RANDOM_INIT_PREFIX):
        return display_name(backbone[len(RANDOM_INIT_PREFIX):]) + " (random init)"
    return os.path.basename(os.path.normpath(backbone)) if os.path.isdir(backbone) else backbone



__all__ = [
    "BASELINES_JSON",
    "RANDOM_INIT_PREFIX",
    "VADER_PRESETS",
    "CSV_COLUMNS",
    "DEFAULT_BACKBONES",
    "DEFAULT_SEEDS",
    "FIGURE_PNG",
    "HUB_DATASETS",
    "METRICS",
    "REGIMES",
    "RESULTS_CSV",
    "RUN_KEY",
    "RunSpec",
    "SETTINGS_JSON",
    "TABLE_MD",
    "TEXT_COLUMN_CANDIDATES",
    "display_name",
]
