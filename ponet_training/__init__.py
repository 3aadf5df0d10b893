"""The training, data and evaluation library of PoNet for Hugging Face, used by `pretrain/`, `finetune/`,
`benchmarks/` and `experiments/` (the model itself is the `modeling_ponet` package: what ships to the Hub).

Folders by job, one job per module; import the one you need (nothing heavy is imported here). This list is the
index of every module (a test keeps it complete):

- `engine/`, what every training script runs:
  `run` (flags, the accelerator, logging, trackers, `all_results.json`), `launch` (launch mistakes refused at
  start), `run_folder` (`RunFolder`: the one owner of a run's output folder: refusal, overwrite, the lock, the
  manifest, the checkpoint to resume and the identity of its data, `best_model/`, the release), `settings` (the
  settings that change a result: the one fingerprint and the one refusal; the data's sizes and hashes),
  `dataloaders` (resumable batch order, the padding multiple), `optimization` (optimizer, schedule, one update),
  `loop` (the train and predict loops, the progress bar), `preemption` (SIGTERM / SIGINT: every rank stops at a
  step boundary, saved), `checkpoints` (the checkpoint writer, resume), `saving` (staged saves whose failure is one
  line; model saves), `best_model` (the best dev model, the final model).
- `data/`, readers and the real data:
  `tables` (the one csv / tsv / json / jsonl reader: tables as their writers wrote them), `labels` (the label
  rules: classes or scores, names, ids), `text_files` (the text rule of corpus files: UTF-8, control characters),
  `segments` (sentences -> segment ids),
  `truncation` (linear-time truncation), `tokenizer_loading` (never an empty tokenizer; token-id checks),
  `wordpiece` (train a tokenizer, a config for it), `stdlib_docstrings` (the embedded default corpus),
  `python_docs` (the Python documentation corpus), `vader_ratings` (human-rated sentences, read from the
  vaderSentiment sdist), `vader` (their splits, labels and baselines), `minilm` (a real pretrained encoder),
  `toy_pairs` (a toy GLUE pair task for the tests), `cache` (the asset cache);
  `lra/`, the Long Range Arena data: `encoding` (the id rules: 0 is padding, bytes and grey levels + 1, logged
  truncation), `layout` (a task's files in a folder or the release's), `listops` (our generator, the release's
  files), `snakes` (our Pathfinder generator), `pathfinder` (its release layout), `images` (CIFAR-10 grey, the
  Fashion-MNIST stand-in), `text` (IMDb bytes), `retrieval` (AAN pairs), `tasks` (the data registry and
  `load_lra_dataset`).
- `models/`, model code the library adds to the model package: `pooled_classifier` (any backbone +
  `SequencePooler` + a linear head), `lra` (the Long Range Arena encoder: one pre-LayerNorm shell whose mixer is
  PoNet's own, softmax attention or FNet).
- `tasks/`, one job each:
  `pretraining/` (`corpus`: the data flags and the documents; `sso_examples`: documents -> MLM + SSO examples;
  `collators`: padding, masking, the causal-LM batches; `vocabulary`: the tokenizer, pretrained or trained
  WordPiece; `objectives`: the model of each objective and its loss; `evaluation`: MLM / SSO evaluation and its
  history),
  `glue/` (`registry`: the nine tasks and the paper's grid; `data`: their files and labels; `submission`: benchmark
  files), `metrics`, `finetuning` (what the fine-tuning scripts share: model loading, the best-model metric,
  prediction files, the card), `long_documents`, `pooling_study/` (`settings`, `data`, `runs`, `store`, `report`),
  `lra/` (`settings`: the published settings per task and the model; `batches`: fixed-length padding; `report`:
  the runs beside the paper's table).
- `inference/`, tools no training script runs: `precision` (what each inference precision means), `quantization`
  (dynamic int8).
- `hub/`: `model_cards` (cards; templates in `hub/templates/`), `push` (Hub uploads).
- `sentence_transformers`: export a model as a sentence-transformers folder (`sentence_transformers_files/`: the
  module shipped inside it).
- `script_loading`: a Python file (a script of `pretrain/` or `finetune/`) imported as a module.
- `provenance`: what made a results folder (command, commit, CPU and its flags, threads, versions), written
  beside it as `provenance.json`.
"""
