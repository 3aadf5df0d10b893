"""A sentence-transformers module for the poolings sentence-transformers' own `Pooling` does not have.

`ponet_training.sentence_transformers` copies this file, unchanged, into every exported folder whose pooling needs
it (`weighted_sum`, `attention`, or a concatenation with one of them), next to `pooling.py` from `modeling_ponet/`.
`modules.json` names it `sentence_pooling.SentencePooling`; `SentenceTransformer(folder, trust_remote_code=True)`
then imports both files from the folder, so the pooling is the package's own `SequencePooler`, not a copy of it.
The folder needs torch and sentence-transformers >= 6 only. Inside this repository the file is never imported (the
relative import below only resolves inside an exported folder).
"""

from sentence_transformers.base.modules import Module

from .pooling import SequencePooler


class SentencePooling(Module):
    """`token_embeddings` `[batch, length, hidden]` + `attention_mask` -> `sentence_embedding` `[batch, output]`.

    Args:
        embedding_dimension: width of the token embeddings.
        pooling_mode: a mode of `pooling.POOLING_MODES`, several joined by `+` (concatenated in that order).
    """

    config_keys = ["embedding_dimension", "pooling_mode"]

    def __init__(self, embedding_dimension: int, pooling_mode: str = "mean"):
        super().__init__()
        self.embedding_dimension = embedding_dimension
        self.pooler = SequencePooler(embedding_dimension, pooling_mode)
        self.pooling_mode = "+".join(self.pooler.modes)

    def forward(self, features: dict, **kwargs) -> dict:
        features["sentence_embedding"] = self.pooler(features["token_embeddings"], features.get("attention_mask"))
        return features

    def get_embedding_dimension(self) -> int:
        return self.pooler.output_size

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token=None, cache_folder=None, revision=None,
             local_files_only: bool = False, **kwargs) -> "SentencePooling":
        hub_kwargs = dict(subfolder=subfolder, token=token, cache_folder=cache_folder, revision=revision,
                          local_files_only=local_files_only)
        module = cls(**cls.load_config(model_name_or_path, **hub_kwargs))
        # the learned scorers; a missing or unexpected tensor raises rather than leaving random weights
        cls.load_torch_weights(model_name_or_path, model=module, **hub_kwargs)
        return module


__all__ = ["SentencePooling"]
