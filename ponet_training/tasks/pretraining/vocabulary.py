"""The vocabulary of a pretraining run: a pretrained tokenizer, or WordPiece trained on the corpus.

- `load_or_train_tokenizer(args, accelerator, corpus, folder)`: from `--tokenizer_name` / `--model_name_or_path`, or
  (`--train_tokenizer`) trained on the main process and shared with the others; a resumed run takes the one saved in
  the checkpoint its `RunFolder` resumes (the vocabulary the run trained on, even if the corpus changed since).
"""

import logging
import time

from accelerate.utils import broadcast_object_list
from tokenizers import Tokenizer
from transformers import AutoTokenizer, BertTokenizerFast

from ponet_training.data.tokenizer_loading import load_tokenizer
from ponet_training.data.wordpiece import train_wordpiece_tokenizer
from ponet_training.tasks.pretraining.corpus import corpus_text_batches


logger = logging.getLogger(__name__)


def load_or_train_tokenizer(args, accelerator, corpus, folder):
    """The tokenizer: from --tokenizer_name / --model_name_or_path, or trained on the corpus on the main
    process and broadcast to the others (so every rank has the very same vocabulary); a resumed run that trained one
    takes it from the checkpoint its run folder resumes."""
    if not args.train_tokenizer:
        tokenizer = load_tokenizer(args.tokenizer_name or args.model_name_or_path,
                                   trust_remote_code=args.trust_remote_code)
        if not tokenizer.is_fast:
            raise ValueError("Sentence-level segment ids need a fast tokenizer (offsets); this one is not")
        return tokenizer
    # A resumed run must keep the vocabulary it trained on (training is reproducible, but only on the same texts):
    # a checkpoint without its tokenizer is an error, never a reason to train a new one.
    checkpoint = folder.resume_checkpoint  # checked for its tokenizer (`RunFolder(resume_needs_tokenizer=True)`)
    if checkpoint is not None:
        logger.info(f"Using the tokenizer trained by the interrupted run, saved in {checkpoint}")
        return AutoTokenizer.from_pretrained(checkpoint)
    payload = [None]
    if accelerator.is_main_process:
        limit = args.tokenizer_train_documents or (100_000 if args.streaming else None)
        started = time.perf_counter()
        batches = RereadableBatches(lambda: corpus_text_batches(corpus["train"], max_documents=limit))
        tokenizer = train_wordpiece_tokenizer(batches, vocab_size=args.vocab_size)
        logger.info(f"Trained a WordPiece tokenizer of {len(tokenizer)} tokens in {time.perf_counter() - started:.1f}s")
        payload = [tokenizer.backend_tokenizer.to_str()]
    broadcast_object_list(payload)
    # Every rank (the main one too) rebuilds it from the same JSON, so the datasets cache keys agree.
    return BertTokenizerFast(tokenizer_object=Tokenizer.from_str(payload[0]), do_lower_case=True, unk_token="[UNK]",
                             sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")


class RereadableBatches:
    """The corpus's text batches, read afresh on each iteration (the WordPiece trainer reads its texts twice) without
    holding the corpus in memory."""

    def __init__(self, make_batches):
        self.make_batches = make_batches

    def __iter__(self):
        return iter(self.make_batches())


__all__ = ["load_or_train_tokenizer"]
