"""Shared fixtures and helpers: everything offline, tiny and made here (no Hub access at test time): tokenizers and
configs, the published checkpoint's layout, a tiny pretrained PoNet for the fine-tuning scripts (`checkpoint`), a
topic corpus and the flags of a tiny pretraining run (`corpus`, `TINY`, `PRETRAIN`, `pretraining_args`); the scripts
run in this process (`finetune_script`, `common`) or in a child (`run_pretraining`, `run_script`); the naive
reference of the model (`naive_forward`, `make_batch`, `random_weights`). No test imports another test file.

Float tolerances (tests/tolerance.py): the suite must pass on any CPU torch supports (AVX2, AVX-512, AMX GEMM
kernels) at any thread count, where the same value computed another way (another kernel, batch shape, process or
transformers version) differs by rounding. So a comparison of two computations uses `tolerance.assert_close`:
rtol = 8 eps(dtype) sqrt(n), with n the longest sum involved (a layer's `intermediate_size` for a whole model), and
atol = rtol x max|expected| for elements near zero. Half-precision and int8 bounds are stated in units of their
step beside each comparison. Exact equality is kept where the computation is the same (a copy, a save/load round
trip, the same call twice, a run resumed on the same machine), and said so beside it. torch's default float32
tolerances (rtol 1.3e-6, atol 1e-5) remain only for values of unit scale from short sums (pooled random normals,
probabilities summing to one).
"""

import os

# Set before transformers / huggingface_hub are imported, so a stray download fails fast.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from fixtures.published_checkpoint import write_published_repo  # noqa: E402
from modeling_ponet import PoNetForPreTraining  # noqa: E402
from ponet_training.data import toy_pairs  # noqa: E402
from ponet_training.data.wordpiece import config_for_tokenizer, train_wordpiece_tokenizer  # noqa: E402
from ponet_training.script_loading import load_script  # noqa: E402


TOY_CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps all day. A fox is quick.",
    "Python is a programming language. It has a large standard library. Tests keep code honest.",
    "Pooling networks mix tokens with max and mean pooling. They are fast on long sequences.",
    "The movie was great and the actors were wonderful. I loved every minute of it.",
    "The movie was terrible and boring. I hated the plot and the ending was bad.",
    "Rivers flow to the sea. Mountains rise above the clouds. The weather changes quickly.",
]

ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict:
    """The environment of a script run in a child process: offline, this checkout first on the path, and this
    process's thread count (a child's weights are compared bit for bit with runs made here, and another thread count
    may pick other kernels); `extra` on top (e.g. OMP_NUM_THREADS="1" for two processes sharing the cores)."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               OMP_NUM_THREADS=str(torch.get_num_threads()), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def pytest_configure(config):
    # markers of transformers' common model tests, which test_transformers_common.py runs
    for marker in ("accelerate_tests", "flash_attn_test", "flash_attn_3_test", "flash_attn_4_test", "torch_compile_test"):
        config.addinivalue_line("markers", f"{marker}: a marker of transformers' common model tests")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A WordPiece tokenizer (BERT-style, uncased) trained on a toy corpus: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4."""
    return train_wordpiece_tokenizer(TOY_CORPUS * 4, vocab_size=300, min_frequency=1)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_tokenizer")
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def tiny_config(tiny_tokenizer):
    """Factory for a tiny PoNetConfig whose vocabulary and special ids match `tiny_tokenizer`."""

    def make(**kwargs):
        defaults = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=128)
        defaults.update(kwargs)
        return config_for_tokenizer(tiny_tokenizer, **defaults)

    return make


@pytest.fixture(scope="session")
def published_repo(tmp_path_factory):
    """A local copy of the published `chtan/ponet-base-uncased` in its own layout (tests/fixtures/published_checkpoint.py):
    its config, tokenizer files naming `PoNetTokenizer`, bert-base-uncased's vocabulary and `pytorch_model.bin`."""
    return write_published_repo(tmp_path_factory.mktemp("ponet-base-uncased"))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


# ---------------------------------------------------------------------------------------------------------------
# The training scripts' inputs
# ---------------------------------------------------------------------------------------------------------------


def save_tiny_ponet(path: Path, texts: list[str], max_position_embeddings: int = 128) -> Path:
    """A tiny 'pretrained' PoNet folder at `path` (random weights from seed 0) with a WordPiece tokenizer of `texts`."""
    tokenizer = train_wordpiece_tokenizer(texts, vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    config = config_for_tokenizer(tokenizer, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=max_position_embeddings)
    PoNetForPreTraining(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny 'pretrained' PoNet whose tokenizer covers the toy task's words."""
    return save_tiny_ponet(tmp_path_factory.mktemp("tiny_ponet"),
                           TOY_CORPUS * 4 + [toy_pairs.toy_vocabulary_text()] * 4)


TOPICS = {
    "river": "water flows down the valley to the sea past stones and fish",
    "kitchen": "the cook bakes bread and boils soup with salt and butter",
    "network": "packets travel between servers over cables and routers",
    "garden": "flowers grow in the soil under the sun with rain and bees",
    "library": "readers borrow books and study maps in quiet rooms",
}


def write_corpus(path: Path, documents: int, seed: int) -> Path:
    """Blank-line separated documents of 5-9 sentences, each document about one topic."""
    rng = random.Random(seed)
    docs = []
    for _ in range(documents):
        topic, words = rng.choice(sorted(TOPICS.items()))
        words = words.split()
        sentences = []
        for _ in range(rng.randint(5, 9)):
            body = " ".join(rng.choice(words) for _ in range(rng.randint(4, 9)))
            sentences.append(f"The {topic} {body}.")
        docs.append(" ".join(sentences))
    path.write_text("\n\n".join(docs) + "\n")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(train.txt, valid.txt): 40 and 8 topic documents for pretraining."""
    folder = tmp_path_factory.mktemp("corpus")
    return write_corpus(folder / "train.txt", 40, 0), write_corpus(folder / "valid.txt", 8, 1)


# pretrain/run_pretraining.py flags of a tiny model that trains its own tokenizer.
TINY = ["--train_tokenizer", "--vocab_size", "300", "--hidden_size", "32", "--num_hidden_layers", "2",
        "--num_attention_heads", "4", "--intermediate_size", "64", "--max_seq_length", "48",
        "--per_device_eval_batch_size", "16"]

# A 6-update pretraining run checkpointed every 2 updates.
PRETRAIN = ["--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--num_warmup_steps", "2",
            "--max_train_steps", "6", "--max_train_samples", "40", "--max_eval_samples", "8", "--checkpointing_steps",
            "2"]


@pytest.fixture(scope="module")
def pretraining_args(corpus, tmp_path_factory):
    """A tiny pretraining run with a tokenizer trained once, here (the runs need not train their own)."""
    tokenizer_dir = tmp_path_factory.mktemp("tokenizer")
    train_wordpiece_tokenizer(TOY_CORPUS + list(TOPICS.values()), vocab_size=300,
                              min_frequency=1).save_pretrained(tokenizer_dir)
    train, valid = corpus
    fixed_tokenizer = [a for a in TINY if a not in ("--train_tokenizer", "--vocab_size", "300")]
    return ["--train_file", train, "--validation_file", valid, *fixed_tokenizer, "--tokenizer_name", tokenizer_dir,
            *PRETRAIN]


# ---------------------------------------------------------------------------------------------------------------
# The scripts: in this process (their `main(argv)`) or in a child process
# ---------------------------------------------------------------------------------------------------------------

PRETRAIN_SCRIPT = ROOT / "pretrain" / "run_pretraining.py"


def finetune_script(name: str):
    """`finetune/<name>.py` as a module: `finetune_script("run_glue").main(argv)` runs it in this process."""
    return load_script(ROOT / "finetune" / f"{name}.py")


def common(checkpoint, output_dir, *extra):
    """run_glue.py flags of a tiny fine-tuning run of `checkpoint` into `output_dir`, then `extra`."""
    return ["--model_name_or_path", str(checkpoint), "--output_dir", str(output_dir), "--max_length", "32",
            "--per_device_eval_batch_size", "32", *extra]


def run_pretraining(args, launcher=None, env_extra=None, timeout=300) -> subprocess.CompletedProcess:
    """pretrain/run_pretraining.py with `args` in a child process (`launcher`: e.g. an `accelerate launch` prefix)."""
    command = (launcher or [sys.executable]) + [str(PRETRAIN_SCRIPT)] + [str(a) for a in args]
    return subprocess.run(command, capture_output=True, text=True, env=child_env(**(env_extra or {})),
                          timeout=timeout, cwd=ROOT)


def run_script(args, launcher=None, env_extra=None, timeout=300) -> subprocess.CompletedProcess:
    """`run_pretraining`, asserting that it succeeded."""
    result = run_pretraining(args, launcher, env_extra, timeout)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def results_of(output_dir: Path) -> dict:
    return json.loads((Path(output_dir) / "all_results.json").read_text())


def pretraining_data_args(*argv):
    """The pretraining data flags (`tasks.pretraining.corpus.add_pretraining_data_args`) parsed from `argv`."""
    from ponet_training.tasks.pretraining.corpus import add_pretraining_data_args

    parser = add_pretraining_data_args(argparse.ArgumentParser())
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--preprocessing_num_workers", type=int, default=None)
    parser.add_argument("--overwrite_cache", action="store_true")
    return parser.parse_args([str(a) for a in argv])


# ---------------------------------------------------------------------------------------------------------------
# The model's naive reference (tests/test_modeling.py holds it to the model; PEFT and the published checkpoint use it)
# ---------------------------------------------------------------------------------------------------------------

CLS, SEP, PAD = 2, 3, 0  # tiny_tokenizer's ids
# The tiny models' longest sum (intermediate_size in conftest.py): it sets the float tolerance (tests/tolerance.py).
REDUCTION = 64
NEG = -10000.0  # the published code's "large negative"


# ------------------------------------------------------------------------------------------------------------
# A deliberately naive reference, one example at a time, loops over heads, segments and windows (the paper's GA,
# SMP, LMP and PF, with the published implementation's masking)
# ------------------------------------------------------------------------------------------------------------


def naive_segments_from_special(special):
    """Each CLS/SEP is its own segment; the tokens between two of them form one."""
    ids, seg = [], 0
    for i in range(len(special)):
        if i > 0 and (special[i] or special[i - 1]):
            seg += 1
        ids.append(seg)
    return ids


def naive_mixer(mixer, x, valid, special, segments, clsgsepg, window, num_heads):
    """x: [L, H] one example; valid/special: lists of bools; segments: list of ints. Returns Y [L, H], probs [nh, L]."""
    length, hidden = x.shape
    d = hidden // num_heads
    Q, K, O = mixer.dense_q(x), mixer.dense_k(x), mixer.dense_o(x)
    S, Lc = mixer.dense_segment(x).clone(), mixer.dense_local(x).clone()
    # GA
    g = torch.zeros(hidden)
    probs = torch.zeros(num_heads, length)
    for h in range(num_heads):
        cols = slice(h * d, (h + 1) * d)
        real = [i for i in range(length) if valid[i]]
        q = sum(Q[i, cols] for i in real) / len(real)
        logits = torch.stack([q @ K[i, cols] / math.sqrt(d) + (0.0 if valid[i] else NEG) for i in range(length)])
        a = logits.softmax(-1)
        probs[h] = a
        g[cols] = sum(a[i] * K[i, cols] for i in range(length))
    # SMP
    for i in range(length):
        if not valid[i]:
            S[i] = NEG
    S_out = torch.empty_like(S)
    for i in range(length):
        members = [j for j in range(length) if segments[j] == segments[i]]
        S_out[i] = torch.stack([S[j] for j in members]).max(0).values
    # LMP
    for i in range(length):
        if not valid[i] or (clsgsepg and special[i]):
            Lc[i] = NEG
    half = window // 2
    L_out = torch.empty_like(Lc)
    for i in range(length):
        members = range(max(0, i - half), min(length, i + half + 1))
        L_out[i] = torch.stack([Lc[j] for j in members]).max(0).values
    if clsgsepg:
        for i in range(length):
            if special[i]:
                S_out[i] = 0.0
                L_out[i] = 0.0
    # PF
    Y = (g + S_out) * O + L_out
    for i in range(length):
        if not valid[i]:
            Y[i] = 0.0
    return Y, probs


def naive_forward(model, input_ids=None, attention_mask=None, segment_ids=None, inputs_embeds=None,
                  token_type_ids=None):
    """Reference last_hidden_state [B, L, H] and GA probs per layer, computed example by example."""
    config = model.config
    reference = input_ids if input_ids is not None else inputs_embeds
    batch, length = reference.shape[:2]
    outs, all_probs = [], []
    for b in range(batch):
        valid = [True] * length if attention_mask is None else [bool(v) for v in attention_mask[b]]
        if input_ids is not None:
            special = [int(t) in (config.cls_token_id, config.sep_token_id) for t in input_ids[b]]
        else:
            special = [False] * length
        if segment_ids is not None:
            segments = [int(s) for s in segment_ids[b]]
        elif config.segment_size is not None:
            segments = [i // config.segment_size for i in range(length)]
        elif input_ids is not None:
            segments = naive_segments_from_special(special)
        else:
            segments = [0] * length
        emb = model.embeddings(
            input_ids=None if input_ids is None else input_ids[b : b + 1],
            inputs_embeds=None if inputs_embeds is None else inputs_embeds[b : b + 1],
            token_type_ids=None if token_type_ids is None else token_type_ids[b : b + 1],
        )[0]
        x, probs_b = emb, []
        for layer in model.encoder.layer:
            attn = layer.attention
            Y, probs = naive_mixer(attn.self, x, valid, special, segments, config.clsgsepg,
                                   config.local_window_size, config.num_attention_heads)
            h = attn.output.LayerNorm(x + attn.output.dense(Y))
            x = layer.output.LayerNorm(h + layer.output.dense(layer.intermediate(h)))
            probs_b.append(probs)
        outs.append(x)
        all_probs.append(probs_b)
    per_layer = [torch.stack([all_probs[b][l] for b in range(batch)]) for l in range(config.num_hidden_layers)]
    return torch.stack(outs), per_layer


def make_batch():
    """Two rows: `[CLS] a b [SEP] c [SEP] PAD ...` with heavy padding, and a full row with three SEPs."""
    ids = torch.tensor(
        [
            [CLS, 10, 11, SEP, 12, SEP, PAD, PAD, PAD, PAD, PAD, PAD],
            [CLS, 20, 21, 22, SEP, 23, 24, SEP, 25, 26, 27, SEP],
        ]
    )
    return ids, (ids != PAD).long()


def random_weights(model):
    """Larger-than-init weights so that every max and mask matters numerically."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" not in name:
                p.normal_(0, 0.3)
    return model


