"""The documentation runs as written: every script, module and shell script that README.md and docs/*.md tell the
reader to run exists and answers `--help` (shell scripts: exist and parse), every import line of their Python code
runs, every code reference to this project (`module.name` in backticks, e.g. `[`saving.save_model`]`, and
`path/to/file.py`) names code that exists, every relative link points at a file (and at a heading, for an anchor),
and the README stays a landing page."""

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import child_env

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
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=child_env())
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


# ---------------------------------------------------------------------------------------------------------------
# Code references and import lines
# ---------------------------------------------------------------------------------------------------------------

PACKAGES = ("ponet_training", "modeling_ponet")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
FILE_SUFFIXES = {"py", "md", "json", "jsonl", "sh", "yaml", "yml", "png", "csv", "tsv", "txt", "tmp", "bin", "pkl",
                 "safetensors", "lock", "old"}
# Module stems of this project, each with the import paths of its modules (a stem may name several, e.g. `settings`).
MODULES: dict[str, list[str]] = {}
for _package in PACKAGES:
    for _path in sorted((REPO / _package).rglob("*.py")):
        if "sentence_transformers_files" in _path.parts:
            continue
        _name = ".".join(_path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        MODULES.setdefault(_name.split(".")[-1], []).append(_name)


def prose(text: str) -> str:
    """The page without its fenced code blocks (code there is checked as code)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def code_references(text: str) -> list[str]:
    """Backticked names of this project's code: `module.name` (a module stem of ponet_training / modeling_ponet, or a
    full import path), with a call's arguments dropped; and paths of its Python files (`engine/settings.py`)."""
    found = []
    for span in CODE_SPAN.findall(prose(text)):
        name = span.split("(")[0].strip().rstrip(":")
        if DOTTED.fullmatch(name) and name.rsplit(".", 1)[1] not in FILE_SUFFIXES:
            if name.split(".")[0] in MODULES or name.split(".")[0] in PACKAGES:
                found.append(name)
        elif re.fullmatch(r"[\w.-]+(?:/[\w.-]+)+\.py", name):
            found.append(name)
    return found


def _resolves_from(module_name: str, attributes: list[str]) -> bool:
    try:
        target = importlib.import_module(module_name)
    except ImportError:  # also a module's attribute taken for a submodule
        return False
    for attribute in attributes:
        if not hasattr(target, attribute):
            return False
        target = getattr(target, attribute)
    return True


def resolves(reference: str) -> bool:
    """Whether a code reference names something that exists: a file of the tree (from the root, or inside a package),
    or an attribute chain of one of the modules its first component names."""
    if reference.endswith(".py") and "/" in reference:
        return any((REPO / base / reference).is_file() for base in ("", *PACKAGES))
    parts = reference.split(".")
    if parts[0] in PACKAGES:  # a full import path: an importable prefix, then attributes
        return any(_resolves_from(".".join(parts[:cut]), parts[cut:]) for cut in range(len(parts), 0, -1))
    return any(_resolves_from(module, parts[1:]) for module in MODULES[parts[0]])


def import_lines(text: str) -> list[str]:
    """Every import statement of the page's Python code blocks, as one line each."""
    lines = []
    for language, body in FENCE.findall(text):
        if language.strip() == "python":
            lines += [ast.unparse(node) for node in ast.walk(ast.parse(body))
                      if isinstance(node, (ast.Import, ast.ImportFrom))]
    return lines


def broken_imports(lines: list[str]) -> list[str]:
    """The lines that fail, run one by one in a fresh process with this checkout first on the path."""
    probe = ("import sys, traceback\nfor line in sys.argv[1:]:\n    try:\n        exec(line, {})\n"
             "    except Exception as error:\n        print(f'{line}  ->  {type(error).__name__}: {error}')\n")
    result = subprocess.run([sys.executable, "-c", probe, *lines], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env=child_env())
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


@pytest.mark.parametrize("page", DOC_FILES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_code_reference_names_code_that_exists(page):
    wrong = [reference for reference in code_references(page.read_text(encoding="utf-8")) if not resolves(reference)]
    assert not wrong, f"{page.relative_to(REPO)} names code that does not exist: {wrong}"


@pytest.mark.parametrize("page", DOC_FILES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_import_line_runs(page):
    lines = import_lines(page.read_text(encoding="utf-8"))
    broken = broken_imports(lines) if lines else []
    assert not broken, f"{page.relative_to(REPO)}: import lines that fail:\n" + "\n".join(broken)


def test_the_checks_catch_a_moved_name_a_missing_file_and_a_broken_import():
    # A parser that found nothing, or a resolver that accepted anything, would pass every page.
    page = ("The rule is applied by [`saving.save_model`] and [`run.no_such_rule`], in `engine/checkpoints.py` "
            "and `engine/nowhere.py`; `model.config` and `accelerator.save_state` are not ours.\n\n"
            "```python\nfrom ponet_training.hub.model_cards import write_model_card, push_to_hub\n"
            "import modeling_ponet\n```\n")
    references = code_references(page)
    assert references == ["saving.save_model", "run.no_such_rule", "engine/checkpoints.py", "engine/nowhere.py"]
    assert [resolves(reference) for reference in references] == [True, False, True, False]
    broken = broken_imports(import_lines(page))
    assert len(broken) == 1 and "ImportError" in broken[0] and "push_to_hub" in broken[0]
    assert sum(len(code_references(p.read_text(encoding="utf-8"))) for p in DOC_FILES) > 30
