"""The PoNet paper's Long Range Arena training settings, per task (the defaults of `finetune/run_lra.py`), and the
model each task trains.

- `PUBLISHED`: batch, steps, warm-up, evaluation cadence, PoNet's segment block and the padded length, as the
  published LRA code ran each task (`docs/lra.md`).
- `settings_for(task)`: the settings of a task of `ponet_training.data.lra.TASKS` (the stand-ins and the easier
  Pathfinder difficulties train as the task they stand for).
- `scaled_warmup(settings, max_train_steps)`: the warm-up of a shortened (or longer) run, the same fraction of it.
- `build_lra_model(task, mixer, ...)`: an `LRAForSequenceClassification` sized for the task.
"""

from dataclasses import dataclass

from ponet_training.data.lra import TASKS
from ponet_training.models.lra import LRAConfig, LRAForSequenceClassification


@dataclass(frozen=True)
class LRASettings:
    """How the published code trained one task (AdamW lr 1e-4, betas (0.9, 0.999), eps 1e-6, no weight decay for
    every task; the rest here)."""

    batch_size: int
    max_train_steps: int
    num_warmup_steps: int
    eval_steps: int
    segment_size: int  # PoNet's fixed segment block (the whole sequence for Pathfinder: one global max)
    padded_length: int  # every input is padded to it; also the position table's rows (a power of two)


PUBLISHED = {
    "listops": LRASettings(32, 5_000, 1_000, 50, 33, 2048),
    "text": LRASettings(32, 20_000, 8_000, 500, 2, 4096),
    "retrieval": LRASettings(32, 30_000, 800, 300, 65, 4096),
    "image": LRASettings(256, 35_000, 175, 175, 33, 1024),
    "pathfinder": LRASettings(256, 62_400, 312, 312, 1024, 1024),
}
LEARNING_RATE, ADAM_EPSILON = 1e-4, 1e-6
# Tasks trained as another one: the Fashion-MNIST stand-in as Image, the easier Pathfinders as the hard one.
TRAINED_AS = {"fashion_mnist_standin": "image", "pathfinder_intermediate": "pathfinder",
              "pathfinder_easy": "pathfinder"}


def settings_for(task: str) -> LRASettings:
    if task not in TASKS:
        raise ValueError(f"Unknown LRA task {task!r}: choose from {sorted(TASKS)}")
    return PUBLISHED[TRAINED_AS.get(task, task)]


def scaled_warmup(settings: LRASettings, max_train_steps: int) -> int:
    """The published warm-up as the same fraction of a run of `max_train_steps` (the published schedule,
    OneCycleLR, sets its warm-up as that fraction: a shortened run must not spend all of it warming up)."""
    return round(settings.num_warmup_steps * max_train_steps / settings.max_train_steps)


def build_lra_model(task: str, mixer: str, **config_kwargs) -> LRAForSequenceClassification:
    """The paper's LRA model for `task` with `mixer` (`ponet`, `softmax`, `fnet`): the task's classes and vocabulary,
    its padded length as the position table, its segment block for PoNet; `config_kwargs` override `LRAConfig`."""
    data, settings = TASKS[task], settings_for(task)
    if data.max_length > settings.padded_length:
        raise ValueError(f"{task}: inputs of {data.max_length} ids do not fit the padded length "
                         f"{settings.padded_length}")
    kwargs = dict(vocab_size=data.vocab_size, num_labels=data.num_classes, mixer=mixer,
                  max_position_embeddings=settings.padded_length, segment_size=settings.segment_size,
                  pair=data.pair, id2label=dict(enumerate(data.label_names)))
    return LRAForSequenceClassification(LRAConfig(**{**kwargs, **config_kwargs}))


__all__ = ["ADAM_EPSILON", "LEARNING_RATE", "LRASettings", "PUBLISHED", "TRAINED_AS", "build_lra_model",
           "scaled_warmup", "settings_for"]
