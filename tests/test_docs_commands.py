"""The documentation runs as written: every script, module and shell script that README.md and docs/*.md tell the
reader to run exists and answers `--help` (shell scripts: exist and parse), every relative link points at a file (and at a heading, for an anchor),
and the README stays a landing page."""

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

README_MAX_LINES = 250

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`((?:python|bash|accelerate launch|ACCELERATE_USE_CPU=1 accelerate launch) [^`]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
PYTHON_SCRIPT = re.compile(r"\bpython\s+((?:[\w.-]+/)*[\w.-]+\.py)\b")
PYTHON_MODULE = re.compile(r"\bpython\s+-m\s+([A-Za-z_][\w.]*)")
LAUNCHED_SCRIPT = re.compile(r"\baccelerate\s+launch\b.*?\s((?:[\w.-]+/)+[\w.-]+\.py)\b")
CONFIG_FILE = re.compile(r"--config_file\s+(\S+\.ya?ml)\b")
SHELL_SCRIPT = re.compile(r"\bbash\s+((?:[\w.-]+/)*[\w.-]+\.sh)\b")


def shell_snippets(text: str) -> list[str]:
    """The commands a page shows: shell code blocks (continuation lines joined) and inline shell code."""
    snippets = []
    for language, body in FENCE.findall(text):
        if language.strip() in ("", "bash", "sh", "shell", "console"):
            snippets.append(body.replace("\\\n", " "))
    snippets += INLINE.findall(text)
    return snippets


def commands() -> dict[tuple[str, str], set[str]]:
    """(kind, target) -> the pages naming it; kind is script, module, launched, config or shell."""
    found: dict[tuple[str, str], set[str]] = {}
    for page in DOC_FILES:
        for snippet in shell_snippets(page.read_text(encoding="utf-8")):
            for kind, pattern in (("script", PYTHON_SCRIPT), ("module", PYTHON_MODULE), ("launched", LAUNCHED_SCRIPT),
                                  ("config", CONFIG_FILE), ("shell", SHELL_SCRIPT)):
                for target in pattern.findall(snippet):
                    found.setdefault((kind, target), set()).add(page.relative_to(REPO).as_posix())
    return found


COMMANDS = commands()


def module_path(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__main__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_the_pages_name_the_main_commands():
    # A parser that found nothing would pass every test below.
    targets = {target for _, target in COMMANDS}
    for expected in ("demo.sh", "run_tests.sh", "pretrain/run_pretraining.py", "finetune/run_glue.py",
                     "finetune/run_long_doc.py", "finetune/run_pooling_study.py", "benchmarks/bench_speed.py",
                     "benchmarks/bench_training.py",
                     "finetune/sweep_glue.py", "ponet_training.data.vader"):
        assert expected in targets, f"no page shows a command running {expected}"


@pytest.mark.parametrize("kind,target", sorted(COMMANDS), ids=lambda value: value)
def test_each_command_exists_and_parses(kind, target):
    pages = ", ".join(sorted(COMMANDS[(kind, target)]))
    if kind == "module":
        path = module_path(target)
        # Our own modules must be in this tree; a tool the docs run (pytest, pip) must be installed.
        in_repo = (REPO / target.split(".")[0]).exists()
        assert path is not None if in_repo else importlib.util.find_spec(target) is not None, (
            f"{pages}: `python -m {target}`: no module {target}")
        command = [sys.executable, "-m", target, "--help"]
    else:
        path = REPO / target
        assert path.is_file(), f"{pages}: {target} does not exist"
        if kind == "config":
            return
        command = (["bash", "-n", str(path)] if kind == "shell" else [sys.executable, str(path), "--help"])
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{pages}: {' '.join(command[1:])} exited {result.returncode}:\n{result.stderr[-2000:]}"
    if kind != "shell":
        assert "usage:" in result.stdout.lower(), f"{pages}: {target} --help printed no usage"


def test_every_python_snippet_parses():
    snippets = [(page.relative_to(REPO).as_posix(), body) for page in DOC_FILES
                for language, body in FENCE.findall(page.read_text(encoding="utf-8")) if language.strip() == "python"]
    assert len(snippets) > 5, "the code-block parser found almost no Python"
    for page, body in snippets:
        try:
            ast.parse(body)
        except SyntaxError as error:
            raise AssertionError(f"{page}: a Python block does not parse: {error}\n{body}") from None


def relative_links() -> list[tuple[str, str]]:
    links = []
    for page in DOC_FILES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            links.append((page.relative_to(REPO).as_posix(), target))
    return links


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)  # `# comments` in code are no headings
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
            for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.M)}


def test_every_relative_link_resolves():
    links = relative_links()
    assert len(links) > 20, "the link parser found almost nothing"
    broken = []
    for page, target in links:
        file, _, anchor = target.partition("#")
        path = ((REPO / page).parent / file).resolve()
        if not path.exists():
            broken.append(f"{page}: ({target}) no such file")
        elif anchor and path.suffix == ".md" and path.exists() and anchor not in anchors(path.read_text("utf-8")):
            broken.append(f"{page}: ({target}) no heading with that anchor")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_is_a_landing_page():
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details to docs/ (at most {README_MAX_LINES})"


def test_readme_links_every_docs_page():
    readme = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    missing = [page.name for page in DOC_FILES[1:] if page.name != "README.md" and f"]({page.name})" not in readme]
    assert not missing, f"docs/README.md does not list {missing}"
