"""A child process that must run as a user without this project installed, and what it loads there.

The packages are installed in editable mode, so an empty PYTHONPATH and another cwd are not enough: a meta-path finder
refuses `modeling_ponet` and `ponet_training`, and the child checks that neither imports (printing `HIDDEN <name>`).
`load_without_this_package(...)` runs saved folders through every Auto class there (the remote-code and the
published-checkpoint tests); `saved_model_case`, `auto_class_inputs`, `AUTO_HEADS` build its cases.
"""

import os
import subprocess
import sys
import textwrap

import torch

import modeling_ponet as mp
from tolerance import float_tolerance

HIDE_THIS_PROJECT = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("modeling_ponet", "ponet_training"):
            raise ImportError(f"{name} is hidden from this process")
sys.meta_path.insert(0, Refuse())
for hidden in ("ponet_training", "modeling_ponet"):
    try:
        __import__(hidden)
        raise SystemExit(hidden + " must not be importable here")
    except ImportError:
        print("HIDDEN", hidden)
"""


AUTO_HEADS = {
    "AutoModel": mp.PoNetModel,
    "AutoModelForPreTraining": mp.PoNetForPreTraining,
    "AutoModelForMaskedLM": mp.PoNetForMaskedLM,
    "AutoModelForSequenceClassification": mp.PoNetForSequenceClassification,
    "AutoModelForTokenClassification": mp.PoNetForTokenClassification,
    "AutoModelForMultipleChoice": mp.PoNetForMultipleChoice,
    "AutoModelForQuestionAnswering": mp.PoNetForQuestionAnswering,
}


def first_output(model, inputs):
    out = model(**inputs)
    for name in ("last_hidden_state", "prediction_logits", "logits", "start_logits"):
        if getattr(out, name, None) is not None:
            return out[name]
    raise AssertionError(f"no output tensor in {type(out)}")


# The child process cannot import this package: a meta-path finder refuses `modeling_ponet` and `ponet_training`
# (they are installed in editable mode, so removing a sys.path entry would not be enough). It checks, per Auto class:
# the class comes from the folder's own code, the output matches, the weight names are the package's, and a tied
# decoder is the word-embedding tensor itself.
CHILD = HIDE_THIS_PROJECT + textwrap.dedent(
    """
    import sys
    import torch, transformers
    print("TRANSFORMERS", transformers.__version__)
    model_cases, tokenizer_cases, init_cases = torch.load(sys.argv[1])
    for auto_name, folder, inputs, expected, rtol, atol, weight_names in model_cases:
        model = getattr(transformers, auto_name).from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            out = model(**inputs)
        got = next(out[k] for k in ("last_hidden_state", "prediction_logits", "logits", "start_logits")
                   if getattr(out, k, None) is not None)
        torch.testing.assert_close(got, expected, rtol=rtol, atol=atol, msg=lambda m: f"{auto_name}: {m}")
        assert sorted(model.state_dict()) == weight_names, (auto_name, sorted(model.state_dict()))
        decoder = model.get_output_embeddings()
        if decoder is not None:
            assert decoder.weight is model.get_input_embeddings().weight, f"{auto_name}: decoder not tied"
            assert decoder.bias is model.cls.predictions.bias, f"{auto_name}: decoder bias not tied"
        print("OK", auto_name, type(model).__name__)
    for auto_name, folder, expected in init_cases:
        # the same initialiser calls in the same order from the same seed: the very same floats
        config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
        torch.manual_seed(0)
        fresh = getattr(transformers, auto_name).from_config(config, trust_remote_code=True).state_dict()
        assert fresh.keys() == expected.keys(), auto_name
        assert all(torch.equal(fresh[k], expected[k]) for k in expected), f"{auto_name}: another initialisation"
        print("INIT", auto_name)
    for folder, texts, expected in tokenizer_cases:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        encoding = tokenizer(*texts)
        for key, value in expected.items():
            assert encoding[key] == value, (key, encoding[key], value)
        print("TOKENIZER", type(tokenizer).__name__, sorted(expected))
    """
)


def load_without_this_package(model_cases, tokenizer_cases, tmp_path, python=sys.executable, init_cases=()) -> str:
    """Run CHILD with `python` on the cases in a process that cannot import this package; returns its stdout.

    model_cases: (Auto class name, folder, model inputs, expected first output, rtol, atol, sorted weight names)
    each, loaded with `trust_remote_code=True`. tokenizer_cases: (folder, texts, expected encoding). init_cases:
    (Auto class name, folder, the package's fresh state dict from seed 0), built there with `from_config`.
    The child runs outside the repository (cwd is tmp_path) with an empty PYTHONPATH.
    """
    torch.save((model_cases, tokenizer_cases, list(init_cases)), tmp_path / "cases.pt")
    (tmp_path / "child.py").write_text(CHILD)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH="")
    result = subprocess.run(
        [python, str(tmp_path / "child.py"), str(tmp_path / "cases.pt")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for auto_name, *_ in model_cases:
        assert f"OK {auto_name}" in result.stdout
    for auto_name, *_ in init_cases:
        assert f"INIT {auto_name}" in result.stdout
    return result.stdout


def auto_class_inputs(head, ids, mask, token_type_ids=None):
    """Model inputs for `head`: multiple choice takes `[batch=1, choices, length]`."""
    inputs = {"input_ids": ids, "attention_mask": mask}
    if token_type_ids is not None:
        inputs["token_type_ids"] = token_type_ids
    if head is mp.PoNetForMultipleChoice:
        inputs = {k: v.unsqueeze(0) for k, v in inputs.items()}
    return inputs


def saved_model_case(auto_name, model, inputs, folder):
    """Save `model` to `folder`; -> a case for `load_without_this_package` with the package's own output."""
    with torch.no_grad():
        expected = first_output(model.eval(), inputs)
    model.save_pretrained(folder)
    # Another process (or another transformers) may sum in another order: float noise of the longest sums.
    rtol, atol = float_tolerance(expected, reduction=model.config.intermediate_size)
    return auto_name, str(folder), inputs, expected, rtol, atol, sorted(model.state_dict())
