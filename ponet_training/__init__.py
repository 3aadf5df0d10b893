"""The training, data and evaluation library of PoNet for Hugging Face, used by `pretrain/`, `finetune/`,
`benchmarks/` and `experiments/` (the model itself is the `modeling_ponet` package: what ships to the Hub).

Flat modules, one job each; import the one you need (nothing heavy is imported here):

- Runs: `run` (flags, accelerator, trackers, results, Hub push), `dataloaders` (resumable batch order),
  `optimization` (optimizer, schedule, one update), `checkpoints` (save / resume / best model),
  `loop` (the classifier train and predict loops, progress bar), `finetuning` (classification model loading).
- Data: `tables` (the csv / tsv / json / jsonl reader and label normaliser), `tasks` (the GLUE registry),
  `glue_data`, `long_doc`, `text` (sentences -> segment ids), `pretraining_data`, `stdlib_corpus`, `toy_data`,
  `wordpiece` (train a tokenizer, a config for it).
- Evaluation and publishing: `metrics`, `submission` (GLUE benchmark files), `hub` (model cards, push),
  `model_cards/` (the card templates).
- Models and studies: `pretraining` (pretraining model, tokenizer, evaluation), `pooled_classifier` (any backbone +
  `SequencePooler` + a linear head), `pooling_study/` (the pooling study's pieces).
"""
