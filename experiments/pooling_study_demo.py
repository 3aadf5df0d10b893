#!/usr/bin/env python
"""Reproduce the synthetic offline CPU pooling study (results/pooling_study_demo/pooling_study.{png,md,csv}).

It needs no network: it writes a synthetic sentiment dataset (multi-sentence reviews with neutral filler,
one or two opinion clauses, negation and intensifiers; the label is the sign of the summed opinion), trains
tokenizers on it (WordPiece for PoNet and BERT, byte-level BPE for GPT-2, which has no pad token, as
published), pretrains small PoNet and BERT (masked LM) and GPT-2 (causal LM) backbones of the same size on
unlabelled reviews of the same kind (opinions within a review mostly agree, so the
pretraining sees which words go together), and runs `finetune/run_pooling_study.py` on them (with `--no_cls_pooler`:
masked-LM pretraining leaves BERT/PoNet's pooler untrained). Pass `--extra_backbone DIR` to add a pretrained checkpoint (e.g. the
PoNet of the pretraining demo). Arguments after `--` go to the study (e.g. `-- --seeds 1 2`).

With the Hub at hand, run the real study instead (docs/pooling_study.md).
"""

import argparse
import copy
import csv
import random
import subprocess
import sys
from pathlib import Path

from ponet_training.provenance import write_provenance

REPO = Path(__file__).resolve().parents[1]

POSITIVE = ["good", "great", "wonderful", "brilliant", "moving", "charming", "funny", "clever", "gripping", "superb"]
NEGATIVE = ["bad", "awful", "boring", "dull", "clumsy", "tedious", "weak", "silly", "bland", "painful"]
SUBJECTS = ["the plot", "the acting", "the script", "the music", "the ending", "the cast", "the dialogue",
            "the direction", "the pacing", "the camera work"]
FILLER = [
    "i saw it on a rainy sunday with two friends .",
    "the film runs for almost two hours .",
    "it is based on a novel from the seventies .",
    "the director made three films before this one .",
    "we bought tickets for the late show .",
    "most of it was shot in a small coastal town .",
    "the trailer came out last spring .",
    "my brother had read the book first .",
    "there is a short scene after the credits .",
    "the cinema was half empty that evening .",
]


RECOMMEND = {1: ["i would happily watch it again .", "go and see it .", "it deserves every award it gets ."],
             -1: ["i want my two hours back .", "skip this one .", "i nearly walked out halfway ."]}


def opinion(rng: random.Random, leaning: int) -> tuple[str, int]:
    """One opinion clause and its signed strength: it usually agrees with the review's leaning; negation flips
    the word's polarity and an intensifier doubles it."""
    polarity = leaning if rng.random() < 0.8 else -leaning
    negated = rng.random() < 0.25
    word_polarity = -polarity if negated else polarity
    word = rng.choice(POSITIVE if word_polarity > 0 else NEGATIVE)
    strength, intensifier = (2, rng.choice(["really ", "very ", "truly "])) if rng.random() < 0.4 else (1, "")
    verb = "was not" if negated else "was"
    return f"{rng.choice(SUBJECTS)} {verb} {intensifier}{word} .", polarity * strength


def review(rng: random.Random) -> tuple[str, int]:
    """A review of 2-7 sentences; the label is the sign of its summed opinions (ties are redrawn)."""
    while True:
        leaning = rng.choice([1, -1])
        opinions = [opinion(rng, leaning) for _ in range(rng.choice([1, 2, 3]))]
        if rng.random() < 0.4:
            sign = leaning if rng.random() < 0.8 else -leaning
            opinions.append((rng.choice(RECOMMEND[sign]), sign))
        score = sum(p for _, p in opinions)
        if score != 0:
            break
    sentences = [text for text, _ in opinions] + rng.sample(FILLER, rng.randint(1, 4))
    rng.shuffle(sentences)
    return " ".join(sentences), int(score > 0)


def write_split(path: Path, n: int, rng: random.Random) -> list[str]:
    rows = [review(rng) for _ in range(n)]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return [text for text, _ in rows]


def pretrain(model, tokenizer, texts: list[str], mlm: bool, steps: int, seed: int, batch_size: int = 32):
    """A short masked-LM (15%) or causal-LM pretraining on `texts`; returns the final training loss."""
    import torch
    from transformers import DataCollatorForLanguageModeling, get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    rng = random.Random(seed)
    if tokenizer.pad_token is None:  # the causal-LM collator pads batches; GPT-2 itself keeps no pad token
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.pad_token = tokenizer.eos_token
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=mlm, mlm_probability=0.15)
    encoded = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, steps // 10, steps)
    model.train()
    for step in range(steps):
        batch = collator([{"input_ids": ids} for ids in rng.sample(encoded, batch_size)])
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 100 == 0 or step == steps - 1:
            print(f"  {type(model).__name__} step {step}: loss {loss.item():.3f}", flush=True)
    return loss.item()


def build_backbones(root: Path, texts: list[str], hidden: int, layers: int, steps: int) -> list[Path]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    from modeling_ponet import PoNetForMaskedLM
    from ponet_training.data.wordpiece import config_for_tokenizer, train_wordpiece_tokenizer

    size = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=4 * hidden,
                max_position_embeddings=128)
    wordpiece = train_wordpiece_tokenizer(texts, vocab_size=400, min_frequency=1)
    paths = [root / "ponet-small", root / "bert-small", root / "gpt2-small"]
    for path, model in (
        (paths[0], PoNetForMaskedLM(config_for_tokenizer(wordpiece, **size))),
        (paths[1], BertForMaskedLM(BertConfig(vocab_size=len(wordpiece), pad_token_id=wordpiece.pad_token_id,
                                              **size))),
    ):
        pretrain(model, wordpiece, texts, mlm=True, steps=steps, seed=0)
        model.base_model.save_pretrained(path)  # the encoder alone: what AutoModel loads
        wordpiece.save_pretrained(path)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    gpt2_tokenizer = GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                       unk_token="<|endoftext|>")
    eos = gpt2_tokenizer.eos_token_id
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(gpt2_tokenizer), n_embd=hidden, n_layer=layers, n_head=4,
                                      n_inner=4 * hidden, n_positions=128, bos_token_id=eos, eos_token_id=eos))
    pretrain(gpt2, gpt2_tokenizer, texts, mlm=False, steps=steps, seed=0)
    gpt2.base_model.save_pretrained(paths[2])
    gpt2_tokenizer.save_pretrained(paths[2])
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="outputs/pooling_demo")
    parser.add_argument("--num_train", type=int, default=1000)
    parser.add_argument("--num_eval", type=int, default=500)
    parser.add_argument("--num_unlabelled", type=int, default=5000, help="Reviews for the backbones' pretraining.")
    parser.add_argument("--pretraining_steps", type=int, default=400)
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--num_hidden_layers", type=int, default=2)
    parser.add_argument("--extra_backbone", nargs="*", default=[], help="More backbones (e.g. a pretrained PoNet).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthetic data.")
    args, study_args = parser.parse_known_args()
    study_args = [a for a in study_args if a != "--"]

    root = Path(args.output_dir)
    write_provenance(root)  # the study it runs writes its own in root/study
    rng = random.Random(args.seed)
    write_split(root / "train.csv", args.num_train, rng)
    write_split(root / "dev.csv", args.num_eval, rng)
    unlabelled = [review(rng)[0] for _ in range(args.num_unlabelled)]
    backbones = [str(p) for p in build_backbones(root, unlabelled, args.hidden_size, args.num_hidden_layers,
                                                 args.pretraining_steps)]
    command = [
        sys.executable, str(REPO / "finetune" / "run_pooling_study.py"),
        "--model_name_or_path", *backbones, *args.extra_backbone,
        "--train_file", str(root / "train.csv"), "--validation_file", str(root / "dev.csv"),
        "--output_dir", str(root / "study"),
        "--num_train_epochs", "3", "--per_device_train_batch_size", "32", "--no_cls_pooler",
        "--learning_rate", "5e-4", "--probe_learning_rate", "1e-2", "--max_length", "128",
        *study_args,
    ]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
