"""The Long Range Arena job (`finetune/run_lra.py`): the published settings per task and its batches."""
