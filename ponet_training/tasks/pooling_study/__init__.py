"""The pooling study: how the choice of sentence pooling changes sentiment classification, per backbone.

Sweeps backbones (any model ids or folders: encoders such as PoNet and BERT, decoders such as GPT-2)
x regimes (`frozen`: a linear probe on pooled features of a frozen backbone; `full`: full fine-tuning)
x pooling modes (`SequencePooler`'s, alone or concatenated with `+`) x seeds, on a sentiment dataset.
`finetune/run_pooling_study.py` is the command line and the sweep loop; the pieces live here:

- `settings.py`: the study's defaults, file names, CSV columns and `RunSpec` (one cell of the sweep).
- `data.py`: the sentiment data (SST-2 / IMDb from the Hub, or local files) and its tokenization per backbone.
- `runs.py`: one backbone loaded once, and one run: a `PooledSequenceClassifier` trained and evaluated.
- `store.py`: the record of finished runs (`pooling_study.csv`) and the settings they were made with.
- `report.py`: the markdown table, the figure (matplotlib) and `all_results.json` from the record.
"""
