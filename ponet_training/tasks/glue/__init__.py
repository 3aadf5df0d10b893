"""GLUE: the nine tasks, their data and their benchmark files, for `finetune/run_glue.py` and `finetune/sweep_glue.py`.

- `registry.py`: the tasks (columns, labels, official metrics, submission names) and the paper's fine-tuning grid.
- `data.py`: the Hub dataset, the original distribution's files or local files, with validated labels.
- `submission.py`: test predictions as GLUE benchmark submission files.
"""
