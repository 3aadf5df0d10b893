"""A saved folder's tokenizer needs no remote code: its files name BERT's tokenizer, and the documented way to load
it without this package answers at once, with no "run the custom code?" prompt (transformers 5's AutoTokenizer reads
config.json, whose auto_map names the model code, before the tokenizer files)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import modeling_ponet as mp
from without_package import HIDE_THIS_PROJECT


DOCS = Path(__file__).resolve().parents[1] / "docs" / "using_ponet.md"

CHILD = HIDE_THIS_PROJECT + "from transformers import AutoTokenizer\n"


def documented_tokenizer_line() -> str:
    """The docs' line that loads a shared PoNet's tokenizer without this package."""
    lines = [line for line in DOCS.read_text().splitlines()
             if line.startswith("tokenizer = AutoTokenizer.from_pretrained(\"your-name/your-ponet\"")]
    assert len(lines) == 1, lines
    return lines[0].split("#")[0].strip()


def saved_folder(tiny_config, tiny_tokenizer, folder: Path) -> Path:
    mp.PoNetForMaskedLM(tiny_config()).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def test_saved_tokenizer_files_name_bert_and_no_remote_code(tiny_config, tiny_tokenizer, tmp_path):
    folder = saved_folder(tiny_config, tiny_tokenizer, tmp_path / "saved")
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert re.fullmatch(r"BertTokenizer(Fast)?", tokenizer_config["tokenizer_class"])
    assert "auto_map" not in tokenizer_config
    assert not any("token" in path.name for path in folder.glob("*.py"))


def test_the_documented_tokenizer_line_loads_without_this_package_and_without_a_prompt(tiny_config, tiny_tokenizer,
                                                                                       tmp_path):
    folder = saved_folder(tiny_config, tiny_tokenizer, tmp_path / "saved")
    line = documented_tokenizer_line().replace('"your-name/your-ponet"', repr(str(folder)))
    code = CHILD + line + "\nprint('IDS', tokenizer('the quick fox')['input_ids'])\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=""))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "custom code" not in output, output
    assert f"IDS {tiny_tokenizer('the quick fox')['input_ids']}" in result.stdout
