"""Model code of the training library that extends the model package (`modeling_ponet`, which ships to the Hub)
for the library's own jobs; it may import the model package, never the other way round.

- `pooled_classifier.py`: any backbone + `SequencePooler` + a linear head (the pooling study's classifier).
- `lra.py`: the Long Range Arena encoder and classifier (one shell, the mixer chosen by name).
"""
