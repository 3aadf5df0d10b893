"""PoNet's tokenizer: bert-base-uncased's WordPiece tokenizer, under the name the published checkpoint gives it.

The published `chtan/ponet-base-uncased` names `"tokenizer_class": "PoNetTokenizer"` with an `auto_map` to its own
slow tokenizer file, which does not run on transformers 5. With this package imported, `AutoTokenizer` finds
`PoNetTokenizerFast` for that name (and for any folder of `model_type="ponet"`): BERT's tokenizer, so ids and
`token_type_ids` of sentence pairs are BERT's. It saves as a plain `BertTokenizer`, which loads anywhere, without
this package and without remote code.
"""

import json
import os

from transformers import BertTokenizerFast
from transformers.tokenization_utils_base import TOKENIZER_CONFIG_FILE


class PoNetTokenizerFast(BertTokenizerFast):
    """`BertTokenizerFast` that stands in for the published checkpoint's `PoNetTokenizer`."""

    def __init__(self, *args, **kwargs):
        # The published `auto_map` points at the repository's own tokenizer file; this class replaces it, and a
        # saved copy must not point at a file it does not contain.
        kwargs.pop("auto_map", None)
        super().__init__(*args, **kwargs)

    def _save_pretrained(self, save_directory, file_names, legacy_format=None, filename_prefix=None):
        # Runs after `save_pretrained` wrote the tokenizer config and before any upload: name BERT's class there,
        # so that the folder loads without this package.
        config_file = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + TOKENIZER_CONFIG_FILE)
        with open(config_file, encoding="utf-8") as f:
            tokenizer_config = json.load(f)
        tokenizer_config["tokenizer_class"] = "BertTokenizer"
        tokenizer_config.pop("auto_map", None)
        with open(config_file, "w", encoding="utf-8") as f:
            f.write(json.dumps(tokenizer_config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return super()._save_pretrained(save_directory, file_names, legacy_format, filename_prefix)


PoNetTokenizer = PoNetTokenizerFast  # the published name (transformers 5 keeps one tokenizer class per model)

__all__ = ["PoNetTokenizer", "PoNetTokenizerFast"]
