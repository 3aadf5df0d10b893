"""transformers' own common model tests (`ModelTesterMixin` of its `tests/test_modeling_common.py`) over PoNet.

That file ships in transformers' source distribution on PyPI, not in the wheel: it is taken, at test time, from the
sdist of the installed version (downloaded once with pip into ~/.cache/ponet-tests, or from
$PONET_TRANSFORMERS_SDIST). Two mixins it imports from test folders the sdist leaves out (export and generation
tests, which concern neither an encoder nor this suite) are replaced by empty classes.
"""

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest
from pathlib import Path

import pytest
import torch
import transformers

import modeling_ponet as mp


def _transformers_test_package() -> str:
    """Extract the common test files into a temporary package; returns its name (importable)."""
    version = transformers.__version__
    sdist = os.environ.get("PONET_TRANSFORMERS_SDIST")
    if sdist is None:
        cache = Path.home() / ".cache" / "ponet-tests"
        sdist = cache / f"transformers-{version}.tar.gz"
        if not sdist.exists():
            download = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                 f"transformers=={version}", "-d", str(cache)],
                capture_output=True, text=True, timeout=600,
            )
            if download.returncode != 0 or not sdist.exists():
                pytest.skip(f"transformers {version}'s sdist (for its common tests) could not be downloaded: "
                            f"{download.stderr.strip()[-300:]}", allow_module_level=True)
    root = Path(tempfile.mkdtemp(prefix="transformers_common_tests_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    package = root / "transformers_common_tests"
    with tarfile.open(sdist) as archive:
        for name in ("test_modeling_common.py",):
            member = archive.getmember(f"transformers-{version}/tests/{name}")
            (package / name).parent.mkdir(parents=True, exist_ok=True)
            (package / name).write_bytes(archive.extractfile(member).read())
    for module, mixin in (("exporters/test_export.py", "ExportTesterMixin"),
                          ("generation/test_utils.py", "GenerationTesterMixin")):
        (package / module).parent.mkdir(parents=True, exist_ok=True)
        (package / module).write_text(f"class {mixin}:\n    pass\n")
        (package / module).parent.joinpath("__init__.py").touch()
    (package / "__init__.py").touch()
    sys.path.insert(0, str(root))
    return package.name


_package = _transformers_test_package()
common = __import__(f"{_package}.test_modeling_common", fromlist=["ModelTesterMixin"])


class PoNetModelTester:
    """Tiny configs and inputs for the common tests (the shape of transformers' `*ModelTester` classes)."""

    def __init__(self, parent, batch_size=3, seq_length=9, vocab_size=99, hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=37, num_labels=3, num_choices=4):
        self.parent = parent
        self.batch_size, self.seq_length, self.vocab_size = batch_size, seq_length, vocab_size
        self.hidden_size, self.num_hidden_layers = hidden_size, num_hidden_layers
        self.num_attention_heads, self.intermediate_size = num_attention_heads, intermediate_size
        self.num_labels, self.num_choices = num_labels, num_choices
        self.is_training = True

    def get_config(self):
        return mp.PoNetConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            max_position_embeddings=64, cls_token_id=2, sep_token_id=3, num_labels=self.num_labels,
        )

    def prepare_config_and_inputs_for_common(self):
        input_ids = common.ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        input_ids[:, 0] = 2  # CLS, then segments end at SEP: the published layout
        input_ids[:, self.seq_length // 2] = 3
        input_ids[:, -1] = 3
        attention_mask = common.random_attention_mask([self.batch_size, self.seq_length])
        token_type_ids = common.ids_tensor([self.batch_size, self.seq_length], 2)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return self.get_config(), inputs


class PoNetModelTest(common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (
        mp.PoNetModel,
        mp.PoNetForPreTraining,
        mp.PoNetForMaskedLM,
        mp.PoNetForSequenceClassification,
        mp.PoNetForTokenClassification,
        mp.PoNetForMultipleChoice,
        mp.PoNetForQuestionAnswering,
    )
    test_torch_exportable = False  # export tests live in the sdist's missing `exporters` folder

    def setUp(self):
        self.model_tester = PoNetModelTester(self)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        """The mixin finds heads by transformers' own name tables, which do not list PoNet's."""
        inputs_dict = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs_dict.items()}
        tester = self.model_tester
        if model_class is mp.PoNetForMultipleChoice:
            inputs_dict = {k: v.unsqueeze(1).expand(-1, tester.num_choices, -1).contiguous()
                           if isinstance(v, torch.Tensor) and v.ndim > 1 else v for k, v in inputs_dict.items()}
        if return_labels:
            batch, length = tester.batch_size, tester.seq_length
            if model_class in (mp.PoNetForSequenceClassification, mp.PoNetForMultipleChoice):
                inputs_dict["labels"] = torch.zeros(batch, dtype=torch.long)
            elif model_class in (mp.PoNetForTokenClassification, mp.PoNetForMaskedLM):
                inputs_dict["labels"] = torch.zeros(batch, length, dtype=torch.long)
            elif model_class is mp.PoNetForPreTraining:
                inputs_dict["labels"] = torch.zeros(batch, length, dtype=torch.long)
                inputs_dict["sentence_structural_label"] = torch.zeros(batch, dtype=torch.long)
            elif model_class is mp.PoNetForQuestionAnswering:
                inputs_dict["start_positions"] = torch.zeros(batch, dtype=torch.long)
                inputs_dict["end_positions"] = torch.zeros(batch, dtype=torch.long)
        return inputs_dict

    @contextlib.contextmanager
    def _heads_only(self):
        """The training tests skip bare models by transformers' own name table, which does not list PoNetModel."""
        self.all_model_classes = tuple(c for c in type(self).all_model_classes if c is not mp.PoNetModel)
        try:
            yield
        finally:
            del self.all_model_classes

    def test_training(self):
        with self._heads_only():
            super().test_training()

    def check_training_gradient_checkpointing(self, *args, **kwargs):
        with self._heads_only():
            super().check_training_gradient_checkpointing(*args, **kwargs)

    def test_attention_outputs(self):
        """PoNet's attentions are global aggregation's: one query per head, `[batch, heads, length]` (the mixin's
        version expects `[batch, heads, length, length]`). Otherwise the same checks: one per layer, requested by
        argument or by config, and the last output."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        tester = self.model_tester
        for model_class in self.all_model_classes:
            for by_config in (False, True):
                config.output_attentions = by_config
                model = model_class(config).eval()
                inputs = self._prepare_for_class(inputs_dict, model_class)
                with torch.no_grad():
                    plain = model(**inputs)
                    outputs = model(**inputs) if by_config else model(**inputs, output_attentions=True)
                attentions = outputs.attentions
                self.assertEqual(len(attentions), tester.num_hidden_layers)
                batch = tester.batch_size * (tester.num_choices if model_class is mp.PoNetForMultipleChoice else 1)
                self.assertEqual(list(attentions[0].shape), [batch, tester.num_attention_heads, tester.seq_length])
                if not by_config:
                    self.assertEqual(len(outputs), len(plain) + 1)
                    self.assertIs(outputs[-1], attentions)
                mask = inputs["attention_mask"].reshape(batch, 1, -1).bool()
                torch.testing.assert_close(attentions[0].sum(-1), torch.ones(batch, tester.num_attention_heads))
                # masked out, not small: exact
                self.assertEqual(attentions[0].masked_select(~mask).abs().max().item() if (~mask).any() else 0.0, 0.0)
            config.output_attentions = False
