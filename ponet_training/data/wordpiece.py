"""PoNet's tokenizer story: the bert-base-uncased WordPiece vocabulary, or one trained on a corpus.

PoNet has no tokenizer class of its own: it uses BERT's WordPiece tokenizer (`BertTokenizer`), so a
saved PoNet folder's `tokenizer_config.json` names `BertTokenizer` and `AutoTokenizer` loads it with
or without this package.

- `train_wordpiece_tokenizer(texts, vocab_size, ...)`: an uncased BERT-style WordPiece tokenizer trained on texts.
- `config_for_tokenizer(tokenizer, **kwargs)`: a `PoNetConfig` whose vocabulary and special ids are the tokenizer's.
"""

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertTokenizerFast, PreTrainedTokenizerBase

from modeling_ponet.configuration_ponet import PoNetConfig


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2, lowercase: bool = True
) -> BertTokenizerFast:
    """Train an uncased BERT-style WordPiece tokenizer on `texts` (an iterable of strings or batches of strings).

    The special tokens get ids 0-4 (`[PAD]`=0, as PoNet's `pad_token_id` expects); the result behaves like
    bert-base-uncased's tokenizer (`[CLS] A [SEP] B [SEP]` pairs, token types, offsets).
    """
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"`vocab_size` must be larger than the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise ValueError("The tokenizer training corpus is empty: no token besides the special tokens was learned")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return BertTokenizerFast(
        tokenizer_object=tokenizer,
        do_lower_case=lowercase,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


def config_for_tokenizer(tokenizer: PreTrainedTokenizerBase, **kwargs) -> PoNetConfig:
    """A `PoNetConfig` whose vocabulary size and PAD/CLS/SEP ids match `tokenizer` (other fields from kwargs)."""
    for name in ("pad_token_id", "cls_token_id", "sep_token_id"):
        if getattr(tokenizer, name) is None:
            raise ValueError(
                f"PoNet needs a tokenizer with a {name.split('_')[0].upper()} token; this "
                f"{type(tokenizer).__name__} has none"
            )
    kwargs.setdefault("vocab_size", len(tokenizer))
    return PoNetConfig(
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        **kwargs,
    )


__all__ = ["train_wordpiece_tokenizer", "config_for_tokenizer", "SPECIAL_TOKENS"]
