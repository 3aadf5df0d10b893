"""Long Range Arena data: ListOps and Pathfinder generated here, the other tasks read from the Hub or the LRA
release's files, all as `datasets.DatasetDict`s of id sequences (`tasks.load_lra_dataset`, `tasks.TASKS`)."""

from ponet_training.data.lra.tasks import TASKS, LraTask, load_lra_dataset

__all__ = ["TASKS", "LraTask", "load_lra_dataset"]
