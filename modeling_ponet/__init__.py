"""PoNet for the Hugging Face ecosystem.

Importing this package registers PoNet with transformers' Auto classes (`AutoConfig`, `AutoModel`,
`AutoModelForPreTraining`, `AutoModelForMaskedLM`, `AutoModelForSequenceClassification`,
`AutoModelForTokenClassification`, `AutoModelForMultipleChoice`, `AutoModelForQuestionAnswering`,
`AutoTokenizer`), and marks the classes so that `save_pretrained` writes the modeling code next to the
weights for `trust_remote_code=True` users.

This package is exactly the model: the files that ship to the Hub with the weights (`configuration_ponet.py`,
`modeling_ponet.py`, `pooling.py`) and this registration. Training, data and evaluation live in `ponet_training`.
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
    BertTokenizerFast,
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


__version__ = "0.1.0"

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
    # PoNet uses BERT's WordPiece tokenizer; this lets AutoTokenizer resolve a PoNet config without a tokenizer class.
    AutoTokenizer.register(PoNetConfig, fast_tokenizer_class=BertTokenizerFast, exist_ok=True)


_register()

__all__ = [
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
    "SequencePooler",
    "parse_pooling_modes",
]
