"""The Hub boundary is a directory: `modeling_ponet/` holds exactly the files that ship next to the weights, they
need nothing but torch, transformers and each other, and importing the model pulls in no training library."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import modeling_ponet as mp


PACKAGE = Path(mp.__file__).resolve().parent
# Every module of the model package ships with the weights, except the registration: `__init__.py` and the
# stand-in for the published tokenizer name (saved tokenizers are plain `BertTokenizer`, so it never ships).
REGISTRATION = {"__init__.py", "tokenization_ponet.py"}
HUB_FILES = sorted(path.name for path in PACKAGE.glob("*.py") if path.name not in REGISTRATION)


def top_level_imports(source: str) -> set[str]:
    """First component of every absolute import; relative imports as "." (they stay inside the folder)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else node.module.split(".")[0])
    return names


def test_save_pretrained_writes_exactly_the_model_package_files_as_code(tiny_config, tmp_path):
    mp.PoNetForSequenceClassification(tiny_config()).save_pretrained(tmp_path)
    saved_code = sorted(name for name in os.listdir(tmp_path) if name.endswith(".py"))
    assert saved_code == HUB_FILES
    for name in HUB_FILES:
        assert (tmp_path / name).read_text() == (PACKAGE / name).read_text()


def test_hub_files_import_only_torch_transformers_the_standard_library_and_each_other():
    modules = {name[:-3] for name in HUB_FILES}
    for name in HUB_FILES:
        imports = top_level_imports((PACKAGE / name).read_text())
        outside = {module for module in imports - {".", "torch", "transformers", *modules}
                   if module not in sys.stdlib_module_names}
        assert not outside, f"{name} imports {sorted(outside)}: the saved remote code could not load them"


def test_importing_the_model_loads_no_training_library():
    # transformers itself may import accelerate or scipy when they are installed: count only what the model adds.
    probe = (
        "import sys\n"
        "import transformers, transformers.modeling_utils\n"
        "from transformers import AutoModel, AutoTokenizer, BertTokenizerFast\n"
        "before = set(sys.modules)\n"
        "import modeling_ponet\n"
        "heavy = ('sklearn', 'scipy', 'matplotlib', 'accelerate', 'datasets', 'pysbd', 'ponet_training')\n"
        "added = sorted({m.split('.')[0] for m in set(sys.modules) - before} & set(heavy))\n"
        "print(added)\n"
        "assert not added, added\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def test_the_library_index_names_every_module():
    import ponet_training

    root = Path(ponet_training.__file__).resolve().parent
    index = ponet_training.__doc__
    modules = [path for path in root.rglob("*.py") if path.name != "__init__.py"
               and "sentence_transformers_files" not in path.parts]  # a file shipped inside exported folders
    assert len(modules) > 30
    missing = [str(path.relative_to(root)) for path in modules if f"`{path.stem}`" not in index]
    assert not missing, f"ponet_training/__init__.py does not list {missing}"
    folders = sorted({path.parent.relative_to(root).parts[0] for path in modules if path.parent != root})
    assert [f for f in folders if f"`{f}/`" not in index] == []
