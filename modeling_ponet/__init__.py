"""PoNet for the Hugging Face ecosystem.

Importing this package registers PoNet with transformers' Auto classes (`AutoConfig`, `AutoModel`,
`AutoModelForPreTraining`, `AutoModelForMaskedLM`, `AutoModelForSequenceClassification`,
`AutoModelForTokenClassification`, `AutoModelForMultipleChoice`, `AutoModelForQuestionAnswering`,
`AutoTokenizer`, also under the published checkpoint's tokenizer name `PoNetTokenizer`), gives PEFT PoNet's
default LoRA target modules when PEFT is installed, and marks the classes so that `save_pretrained` writes the
modeling code next to the weights for `trust_remote_code=True` users.

This package is exactly the model: the files that ship to the Hub with the weights (`configuration_ponet.py`,
`modeling_ponet.py`, `pooling.py`) and the registration (this file, and `tokenization_ponet.py`, the stand-in for
the published tokenizer name; saved tokenizers are plain `BertTokenizer`, so it never ships). Training, data and
evaluation live in `ponet_training`.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from .configuration_ponet import PONET_AUTO_MAP, PoNetConfig
from .modeling_ponet import (
    PoNetForMaskedLM,
    PoNetForMultipleChoice,
    PoNetForPreTraining,
    PoNetForPreTrainingOutput,
    PoNetForQuestionAnswering,
    PoNetForSequenceClassification,
    PoNetForTokenClassification,
    PoNetModel,
    PoNetPreTrainedModel,
)
from .pooling import POOLING_MODES, SequencePooler, parse_pooling_modes
from .tokenization_ponet import PoNetTokenizer, PoNetTokenizerFast


__version__ = "0.1.0"

# The five projections of every mixer: PEFT's default LoRA targets for PoNet.
LORA_TARGET_MODULES = ("dense_q", "dense_k", "dense_o", "dense_segment", "dense_local")

_AUTO_CLASSES = {
    AutoModel: PoNetModel,
    AutoModelForPreTraining: PoNetForPreTraining,
    AutoModelForMaskedLM: PoNetForMaskedLM,
    AutoModelForSequenceClassification: PoNetForSequenceClassification,
    AutoModelForTokenClassification: PoNetForTokenClassification,
    AutoModelForMultipleChoice: PoNetForMultipleChoice,
    AutoModelForQuestionAnswering: PoNetForQuestionAnswering,
}


def _register():
    AutoConfig.register("ponet", PoNetConfig, exist_ok=True)
    PoNetConfig.register_for_auto_class("AutoConfig")
    for auto_class, model_class in _AUTO_CLASSES.items():
        auto_class.register(PoNetConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)
    # BERT's WordPiece tokenizer, for PoNet folders without a tokenizer class and for the published checkpoint's
    # `PoNetTokenizer` (AutoTokenizer looks the name up with "Fast" appended among the registered classes).
    AutoTokenizer.register(PoNetConfig, fast_tokenizer_class=PoNetTokenizerFast, exist_ok=True)
    _register_peft_targets()


def _register_peft_targets():
    """Tell PEFT (when installed) which modules LoRA adapts in a PoNet model when no `target_modules` are given."""
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    except ImportError:  # PEFT is optional
        return
    TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.setdefault("ponet", list(LORA_TARGET_MODULES))


_register()

__all__ = [
    "LORA_TARGET_MODULES",
    "PONET_AUTO_MAP",
    "POOLING_MODES",
    "PoNetConfig",
    "PoNetForMaskedLM",
    "PoNetForMultipleChoice",
    "PoNetForPreTraining",
    "PoNetForPreTrainingOutput",
    "PoNetForQuestionAnswering",
    "PoNetForSequenceClassification",
    "PoNetForTokenClassification",
    "PoNetModel",
    "PoNetPreTrainedModel",
    "PoNetTokenizer",
    "PoNetTokenizerFast",
    "SequencePooler",
    "parse_pooling_modes",
]
