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

    Reproducible: the same texts and settings give the same vocabulary with the same ids, byte for byte, in any
    process (see `_continuation_pieces`). `texts` is read twice; a one-shot iterator is read into a list first.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"`vocab_size` must be larger than the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    if iter(texts) is texts:
        texts = list(texts)
    pinned = _continuation_pieces(texts, lowercase)
    tokenizer = _untrained_wordpiece(lowercase)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIAL_TOKENS + pinned, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS) + len(pinned):
        raise ValueError("The tokenizer training corpus is empty: no token besides the special tokens was learned")
    # The pinned pieces were special only to fix their ids: rebuild the tokenizer from the learned vocabulary so that
    # they are ordinary vocabulary entries again (never matched in raw text, never skipped when decoding).
    tokenizer = _untrained_wordpiece(lowercase, vocab=tokenizer.get_vocab())
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
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


def _untrained_wordpiece(lowercase: bool, vocab: dict[str, int] | None = None) -> Tokenizer:
    """BERT's normalizer, pre-tokenizer and decoder around a WordPiece model (empty, or with `vocab`)."""
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]") if vocab else models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def _continuation_pieces(texts: Iterable, lowercase: bool) -> list[str]:
    """Every `##c` piece of the corpus (a character seen inside a word), sorted.

    Why: the `tokenizers` trainer gives these pieces ids in the iteration order of a hash map, which differs from
    process to process, and breaks ties between equally frequent merges by those ids; so the same corpus trains
    different vocabularies (other ids; past a few thousand tokens, other tokens too). Passing the pieces to the
    trainer first, sorted, fixes their ids (the alphabet it already sorts), and with them every tie. A first pass
    of the trainer with no merges finds them: the same word counting, in Rust.
    """
    scout = _untrained_wordpiece(lowercase)
    scout.train_from_iterator(texts, trainer=trainers.WordPieceTrainer(
        vocab_size=0, special_tokens=SPECIAL_TOKENS, show_progress=False))
    return sorted(piece for piece in scout.get_vocab() if piece.startswith("##"))


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
