"""Long inputs cost time and memory linear in their length: pairs are cut before tokenizing (with the very same
result), and long documents are sentence-split in bounded windows."""

import random
import subprocess
import sys
import textwrap
from pathlib import Path

from ponet_training.data import segments as text_module
from ponet_training.data.truncation import tokenize_truncated


ROOT = Path(__file__).resolve().parents[1]


def random_text(rng, words, n):
    return " ".join(rng.choice(words) for _ in range(n))


def test_cut_pairs_tokenize_exactly_as_untruncated_then_truncated(tiny_tokenizer):
    from conftest import TOY_CORPUS

    words = " ".join(TOY_CORPUS).split() + ["unseenword", "zzzq", "fox's", "(dog)"]
    rng = random.Random(0)
    lengths = [0, 1, 5, 14, 15, 16, 17, 40, 41, 42, 120]
    for max_length in (31, 32):
        texts = [random_text(rng, words, rng.choice(lengths)) for _ in range(80)]
        pairs = [random_text(rng, words, rng.choice(lengths)) for _ in range(80)]
        expected = tiny_tokenizer(texts, pairs, truncation=True, max_length=max_length)
        full = tiny_tokenizer(texts, pairs)["input_ids"]
        result, truncated = tokenize_truncated(tiny_tokenizer, texts, pairs, max_length=max_length)
        assert result["input_ids"] == expected["input_ids"]
        assert result["token_type_ids"] == expected["token_type_ids"]
        assert truncated == [len(ids) > max_length for ids in full]
        single, truncated_single = tokenize_truncated(tiny_tokenizer, texts, None, max_length=max_length)
        assert single["input_ids"] == tiny_tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        assert truncated_single == [len(ids) > max_length for ids in tiny_tokenizer(texts)["input_ids"]]


def test_a_3600_word_pair_tokenizes_in_under_1_gb(tiny_tokenizer_dir):
    # Words the toy vocabulary splits into several pieces: ~4 tokens per word, ~15k tokens per side.
    script = textwrap.dedent(f"""
        import random, resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        from transformers import AutoTokenizer
        from ponet_training.data.truncation import tokenize_truncated
        tokenizer = AutoTokenizer.from_pretrained({str(tiny_tokenizer_dir)!r})
        rng = random.Random(0)
        def text():
            return " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(3600))
        encoding, truncated = tokenize_truncated(tokenizer, [text()], [text()], max_length=128)
        assert len(encoding["input_ids"][0]) == 128 and truncated == [True]
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    peak = int(done.stdout.split()[-1])
    assert peak < 1024 ** 3, f"peak RSS {peak / 1024 ** 2:.0f} MiB"


def paragraph_of(n_sentences, rng):
    subjects = ("The dog", "A fox", "Dr. Smith", "The river", "Our team", "The U.S. office")
    verbs = ("sleeps all day", "runs 3.5 km", "flows to the sea", "wins again", "keeps code honest")
    return " ".join(f"{rng.choice(subjects)} {rng.choice(verbs)} ({i})." for i in range(n_sentences))


class CountingSegmenter:
    """Splits at '. ' like a sentence splitter and adds up a quadratic cost model of each call (pysbd's)."""

    def __init__(self):
        self.cost = 0
        self.longest = 0

    def segment(self, text):
        self.cost += len(text) ** 2
        self.longest = max(self.longest, len(text))
        pieces, start = [], 0
        while (end := text.find(". ", start)) >= 0:
            pieces.append(text[start:end + 2])
            start = end + 2
        return pieces + ([text[start:]] if start < len(text) else [])


def test_sentence_splitting_work_grows_linearly_with_document_length(monkeypatch):
    rng = random.Random(0)
    costs = {}
    for n in (1000, 5000):
        counter = CountingSegmenter()
        monkeypatch.setattr(text_module, "_segmenter", lambda language, counter=counter: counter)
        document = paragraph_of(n, rng)
        # The windows find exactly the sentences one call would (this splitter cuts at every ". ").
        assert len(text_module.sentence_spans(document)) == document.count(". ") + 1
        costs[n] = counter.cost
        assert counter.longest <= text_module.MAX_SEGMENTER_CHARS
    # Quadratic work would be 25x; linear is 5x (plus the overlap of re-segmented window ends).
    assert costs[5000] / costs[1000] < 7


def test_windowed_sentence_splitting_finds_the_same_sentences_as_one_pysbd_call(monkeypatch):
    rng = random.Random(1)
    document = paragraph_of(60, rng) + "\n\n" + paragraph_of(25, rng)
    whole = text_module.sentence_spans(document)
    monkeypatch.setattr(text_module, "MAX_SEGMENTER_CHARS", 400)
    assert text_module.sentence_spans(document) == whole
    assert len(whole) == 85
    # One sentence longer than the window is still covered without a gap.
    long_sentence = "word " * 200 + "end. Short one."
    spans = text_module.sentence_spans(long_sentence)
    assert spans[0][0] == 0 and spans[-1][1] == len(long_sentence)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
