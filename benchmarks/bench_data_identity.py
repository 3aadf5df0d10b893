"""What the identity of the data costs: `settings.file_identity` (the size and an xxh3-128 hash of every byte, which
every checkpoint stores and a resume compares) on a generated text file, beside a plain read of the same file.

The file (`--size_gib`, default 1) is written into `--work_dir`, flushed to disk, and read three ways, each
`--repeats` times (the best and the worst are reported):
  read_cached      every byte read, nothing hashed, the file in the page cache: the floor of any full-content check;
  identity_cached  `file_identity`, the file in the page cache: what a run on a node that just wrote or read its
                   corpus pays;
  identity_cold    `file_identity` after `posix_fadvise(DONTNEED)` dropped the file's pages: a corpus read from disk
                   (a first run on a node). The disk decides this one, not the hash.
The figures are extrapolated linearly to `--extrapolate_gib` (10 by default): the hash reads each byte once, in
8 MiB chunks, so its cost is proportional to the size.

Writes `<output_dir>/results.json`, `RESULTS.md` (measurements, no verdicts) and `provenance.json`; removes the
generated file. The run of results/benchmarks/data_identity/RESULTS.md:
    python benchmarks/bench_data_identity.py --size_gib 1 --repeats 5
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from ponet_training.engine.settings import HASH_NAME, file_identity
from ponet_training.provenance import cpu_facts, write_provenance


GIB = 1 << 30
SENTENCE = b"The river water flows past the old mill and on to the sea, where the boats wait for the tide.\n"


def write_corpus(path: Path, size: int) -> None:
    """`size` bytes of text lines (a sentence with a running number, so no two blocks are the same), on disk."""
    block = bytearray()
    number = 0
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            block.clear()
            while len(block) < (4 << 20):
                block += b"%d " % number + SENTENCE
                number += 1
            chunk = bytes(block[:size - written])
            handle.write(chunk)
            written += len(chunk)
        handle.flush()
        os.fsync(handle.fileno())


def drop_from_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_all(path: Path) -> int:
    total = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            total += len(chunk)
    return total


def timed(function, path: Path, repeats: int, before=None) -> list[float]:
    seconds = []
    for _ in range(repeats):
        if before is not None:
            before(path)
        start = time.perf_counter()
        function(path)
        seconds.append(time.perf_counter() - start)
    return seconds


def markdown(report: dict) -> str:
    size_gib, target = report["size_bytes"] / GIB, report["extrapolate_gib"]
    lines = [
        "# What the identity of the data costs",
        "",
        f"`settings.file_identity` (size + {HASH_NAME} of every byte) on a generated {size_gib:.2f} GiB text file, "
        f"{report['repeats']} times each; CPU: {report['cpu']}, one core (the machine's 1-minute load average was "
        f"{report['load_average_1min']:.1f} at the end). The command and the machine: provenance.json.",
        "",
        f"| measurement | seconds (best, worst) | GiB/s (best) | seconds for {target} GiB (extrapolated, best-worst) |",
        "|---|---|---|---|",
    ]
    for name, seconds in report["seconds"].items():
        best, worst = min(seconds), max(seconds)
        scale = target * GIB / report["size_bytes"]
        lines.append(f"| {name} | {best:.2f}, {worst:.2f} | {size_gib / best:.2f} | "
                     f"{best * scale:.1f}-{worst * scale:.1f} |")
    lines += ["", "The identity is taken once per run, on the main process, when the output folder is claimed.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size_gib", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extrapolate_gib", type=float, default=10.0)
    parser.add_argument("--work_dir", default=tempfile.gettempdir(), help="Where the generated file is written.")
    parser.add_argument("--output_dir", default="results/benchmarks/data_identity")
    args = parser.parse_args(argv)

    size = int(args.size_gib * GIB)
    corpus = Path(args.work_dir) / f"bench_data_identity_{os.getpid()}.txt"
    try:
        write_corpus(corpus, size)
        read_all(corpus)  # into the page cache
        seconds = {
            "read_cached": timed(read_all, corpus, args.repeats),
            "identity_cached": timed(file_identity, corpus, args.repeats),
            "identity_cold": timed(file_identity, corpus, args.repeats, before=drop_from_cache),
        }
    finally:
        corpus.unlink(missing_ok=True)
    facts = cpu_facts()
    report = {"size_bytes": size, "repeats": args.repeats, "extrapolate_gib": args.extrapolate_gib,
              "hash": HASH_NAME, "load_average_1min": os.getloadavg()[0], "cpu": f"{facts['model_name']} ({', '.join(facts['flags'])})", "seconds": seconds}
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (output / "RESULTS.md").write_text(text)
    write_provenance(output)
    print(text)


if __name__ == "__main__":
    main()
