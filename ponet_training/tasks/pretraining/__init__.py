"""Pretraining (MLM + SSO, and the MLM-only / causal-LM baselines on the same batches): the pieces of
`pretrain/run_pretraining.py` that are not the shared loop (`engine.loop`).

- `corpus.py`: the data flags and the documents (local text / jsonl files, a Hub dataset, the embedded corpus).
- `sso_examples.py`: documents -> MLM + sentence-structural-objective examples.
- `collators.py`: padding, masking, the causal-LM batches.
- `vocabulary.py`: the tokenizer: a pretrained one, or WordPiece trained on the corpus.
- `objectives.py`: what each model learns (PoNet: MLM + SSO; a masked LM; a causal LM): the model, its loss,
  sparse prediction.
- `evaluation.py`: the evaluation and its history across resumes.
"""
