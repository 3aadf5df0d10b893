"""The human-rated sentiment data of Hutto & Gilbert (2014) from the vaderSentiment 3.3.2 sdist: reading,
splits, labels and baselines, checked against naive recomputations on the real files."""

import csv
import html
import io
import json
import logging
import math
import tarfile

import numpy as np
import pytest

from ponet_training.data import vader, vader_ratings


@pytest.fixture(scope="session")
def sdist():
    # The real sdist: from the cache, or fetched with pip download (PyPI) on first use.
    return vader_ratings.locate_sdist()


def _raw_lines(sdist, domain):
    """The ground-truth lines, read as plainly as possible (the reference for the loader)."""
    with tarfile.open(sdist) as outer:
        inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(vader_ratings._DATA_MEMBER).read()))
        name = f"hutto_ICWSM_2014/{vader_ratings.DOMAINS[domain].stem}_GroundTruth.txt"
        text = inner.extractfile(name).read().decode("utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip()]


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("domain", list(vader_ratings.DOMAINS))
def test_read_domain_keeps_one_line_per_distinct_sentence(sdist, domain):
    lines = _raw_lines(sdist, domain)
    assert len(lines) == vader_ratings.DOMAINS[domain].rows
    distinct = {" ".join(html.unescape(text).split()) for _, _, text in lines}
    sentences = vader_ratings.read_domain(sdist, domain)
    assert len(sentences) == len(distinct)
    assert {s.text for s in sentences} == distinct
    first = {}
    for source_id, rating, text in lines:
        first.setdefault(" ".join(html.unescape(text).split()), (source_id, float(rating)))
    assert all(first[s.text] == (s.source_id, s.rating) for s in sentences)


def test_polarity_label_rule():
    assert vader.polarity_label(0.5) == 1 and vader.polarity_label(3.9) == 1
    assert vader.polarity_label(-0.5) == 0 and vader.polarity_label(-4) == 0
    assert vader.polarity_label(0.49) is None and vader.polarity_label(-0.49) is None and vader.polarity_label(0) is None
    assert vader.polarity_label(0.3, neutral_band=0.25) == 1
    assert vader.polarity_label(0.0, neutral_band=0.0) == 1


def test_splits_are_disjoint_complete_stratified_and_seeded(sdist):
    sentences = vader_ratings.read_domain(sdist, "amazon")
    splits = vader.split_sentences(sentences, "amazon", seed=42)
    ids = {split: {s.source_id for s in part} for split, part in splits.items()}
    assert not ids["train"] & ids["dev"] and not ids["train"] & ids["test"] and not ids["dev"] & ids["test"]
    assert set().union(*ids.values()) == {s.source_id for s in sentences}
    for label in (0, 1, None):
        in_class = [len([s for s in part if vader.polarity_label(s.rating) == label]) for part in splits.values()]
        total = sum(in_class)
        assert abs(in_class[0] - 0.8 * total) <= 1 and abs(in_class[1] - 0.1 * total) <= 1
    again = vader.split_sentences(sentences, "amazon", seed=42)
    assert {k: [s.source_id for s in v] for k, v in again.items()} == {k: [s.source_id for s in v] for k, v in splits.items()}
    other = vader.split_sentences(sentences, "amazon", seed=7)
    assert {s.source_id for s in other["test"]} != ids["test"]


@pytest.fixture(scope="module")
def prepared(sdist, tmp_path_factory):
    out = tmp_path_factory.mktemp("vader")
    summary = vader.prepare(out, domains=["tweets", "amazon"], seed=3, sdist=sdist)
    return out, summary


def test_prepare_writes_binary_and_rating_files_with_the_label_rule(prepared, sdist):
    out, summary = prepared
    assert json.loads((out / "baselines.json").read_text()) == json.loads(json.dumps(summary))
    for domain in ("tweets", "amazon"):
        all_ids = set()
        for split in vader.SPLITS:
            binary = _read_csv(out / domain / f"{split}.csv")
            ratings = _read_csv(out / domain / f"{split}_ratings.csv")
            assert list(binary[0]) == list(vader.BINARY_COLUMNS) and list(ratings[0]) == list(vader.RATING_COLUMNS)
            for row in binary:
                rating = float(row["rating"])
                assert abs(rating) >= 0.5 and int(row["label"]) == int(rating > 0)
            near_zero = [row for row in ratings if abs(float(row["rating"])) < 0.5]
            assert len(binary) + len(near_zero) == len(ratings)
            assert {r["source_id"] for r in binary} <= {r["source_id"] for r in ratings}
            figures = summary["domains"][domain][split]
            assert (figures["rows"], figures["binary_rows"], figures["near_zero_rows"]) == \
                (len(ratings), len(binary), len(near_zero))
            assert not all_ids & {r["source_id"] for r in ratings}
            all_ids |= {r["source_id"] for r in ratings}
        assert len(all_ids) == len(vader_ratings.read_domain(sdist, domain))


def test_baselines_match_a_naive_recomputation_on_the_written_rows(prepared, sdist):
    out, summary = prepared
    analyzer = vader.load_vader_analyzer(sdist)
    for domain in ("tweets", "amazon"):
        train = [int(r["label"]) for r in _read_csv(out / domain / "train.csv")]
        majority = int(sum(train) * 2 >= len(train))
        for split in ("dev", "test"):
            rows = _read_csv(out / domain / f"{split}.csv")
            labels = np.array([int(r["label"]) for r in rows])
            compound = np.array([analyzer.polarity_scores(r["sentence"])["compound"] for r in rows])
            predicted = np.where(compound > 0, 1, np.where(compound < 0, 0, majority))
            figures = summary["domains"][domain][split]
            assert figures["majority_accuracy"] == pytest.approx(np.mean(labels == majority))
            assert figures["vader_accuracy"] == pytest.approx(np.mean(predicted == labels))
            assert figures["vader_zero_compound"] == int(np.sum(compound == 0))
            all_rows = _read_csv(out / domain / f"{split}_ratings.csv")
            ratings = [float(r["rating"]) for r in all_rows]
            scores = [analyzer.polarity_scores(r["sentence"])["compound"] for r in all_rows]
            assert figures["vader_pearson"] == pytest.approx(np.corrcoef(scores, ratings)[0, 1])
            # VADER is far from perfect but well above the majority class on these sets.
            assert figures["vader_accuracy"] > figures["majority_accuracy"]


def test_written_files_are_readable_as_an_sst2_style_task(prepared):
    from ponet_training.tasks.glue.data import load_local_split
    from ponet_training.tasks.glue.registry import get_task

    out, _ = prepared
    dataset = load_local_split(get_task("sst2"), out / "tweets" / "dev.csv", labelled=True)
    rows = _read_csv(out / "tweets" / "dev.csv")
    assert dataset["sentence"] == [r["sentence"] for r in rows]
    assert dataset["label"] == [int(r["label"]) for r in rows]


def _fake_sdist(path, ground_truth: str, raw: str, stem="tweets"):
    """A tar.gz laid out like the sdist, holding one domain's files (for the loader's handling of odd lines)."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as archive:
        for name, text in ((f"{stem}_GroundTruth.txt", ground_truth), (f"{stem}_anonDataRatings.txt", raw)):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"hutto_ICWSM_2014/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(vader_ratings._DATA_MEMBER)
        info.size = len(inner.getvalue())
        archive.addfile(info, io.BytesIO(inner.getvalue()))
    return path


def test_read_domain_normalises_drops_repeats_and_logs_them(tmp_path, caplog):
    ground_truth = ("1\t2.0\tFish &amp; chips  rock\r\n2\t-1.5\tRain again.\r\n"
                    "3\t1.0\tFish & chips rock\r\n4\t0.25\t meh \r\n\r\n5\t-3\tRain again.")
    raw = "\ufeff1\t2.0\t1\t[2, 2]\r\n2\t-1.5\t1\t[-1, -2]\r\n3\t1.0\t0\t[1, 1]\r\n4\t0.5\t0\t[0, 1]\r\n5\t-3\t0\t[-3]"
    sdist = _fake_sdist(tmp_path / "fake.tar.gz", ground_truth, raw)
    with caplog.at_level(logging.INFO, logger="ponet_training.data.vader_ratings"):
        sentences = vader_ratings.read_domain(sdist, "tweets")
    assert [(s.source_id, s.rating, s.text) for s in sentences] == \
        [("1", 2.0, "Fish & chips rock"), ("2", -1.5, "Rain again."), ("4", 0.25, "meh")]
    log = caplog.text
    assert "blank line skipped" in log
    assert "dropped 2 repeated sentences" in log and "largest rating gap between copies 1.50" in log
    assert "for 1 sentences the ground-truth rating differs" in log
    assert "5 lines" in log  # fewer lines than the real file: said, not hidden


def test_malformed_line_and_unknown_domain_raise_clear_errors(tmp_path, sdist):
    sdist_bad = _fake_sdist(tmp_path / "bad.tar.gz", "1\t2.0\ttext\n2\t1.0\n", "1\t2.0\t0\t[2]\n")
    with pytest.raises(ValueError, match=r"line 2: expected 3 tab-separated fields, got 2"):
        vader_ratings.read_domain(sdist_bad, "tweets")
    bad_rating = _fake_sdist(tmp_path / "r.tar.gz", "1\tgood\ttext\n", "1\t2.0\t0\t[2]\n")
    with pytest.raises(ValueError, match="rating 'good' is not a number"):
        vader_ratings.read_domain(bad_rating, "tweets")
    with pytest.raises(ValueError, match=r"Unknown VADER domain 'imdb'.*movies"):
        vader_ratings.read_domain(sdist, "imdb")
    with pytest.raises(ValueError, match=r"Unknown VADER domain\(s\) \['imdb'\]"):
        vader.prepare(tmp_path / "out", domains=["movies", "imdb"], sdist=sdist)
    with pytest.raises(SystemExit):
        vader.main(["--output_dir", str(tmp_path / "out"), "--domains", "imdb"])


def test_missing_or_wrong_sdist_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PONET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(vader_ratings.SDIST_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="pip download --no-deps --no-binary :all: vaderSentiment==3.3.2"):
        vader_ratings.locate_sdist(download=False)
    with pytest.raises(FileNotFoundError, match="no such file"):
        vader_ratings.locate_sdist(tmp_path / "nowhere.tar.gz")
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the sdist")
    monkeypatch.setenv(vader_ratings.SDIST_ENV, str(other))
    with pytest.raises(ValueError, match=r"\$VADER_SDIST: .* is not the vaderSentiment==3.3.2 source distribution"):
        vader_ratings.locate_sdist()


def test_analyzer_from_the_sdist_scores_polarity(sdist):
    analyzer = vader.load_vader_analyzer(sdist)
    assert analyzer.polarity_scores("This movie is wonderful!")["compound"] > 0.5
    assert analyzer.polarity_scores("This movie is horrible.")["compound"] < -0.5
    assert analyzer.polarity_scores("The train leaves at noon.")["compound"] == 0
    assert not math.isnan(analyzer.polarity_scores("")["compound"])
