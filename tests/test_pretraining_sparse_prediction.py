"""pretrain/run_pretraining.py trains with sparse prediction by default (`--no_sparse_prediction` turns it off):
the same training to float rounding, recorded in all_results.json, and a saved folder that returns dense logits."""

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY
from conftest import results_of, run_script


def test_the_default_sparse_run_trains_as_the_dense_one_and_saves_a_dense_config(corpus, tiny_tokenizer_dir, tmp_path):
    train, valid = corpus
    # One tokenizer for both runs (WordPiece training is not reproducible bit for bit).
    sizes = TINY[TINY.index("--hidden_size"):]
    common = ["--train_file", train, "--validation_file", valid, "--tokenizer_name", tiny_tokenizer_dir, *sizes,
              "--per_device_train_batch_size", "8",
              "--learning_rate", "3e-3", "--max_train_steps", "5", "--max_eval_samples", "16"]
    sparse, dense = tmp_path / "sparse", tmp_path / "dense"
    run_script(common + ["--output_dir", sparse])
    run_script(common + ["--output_dir", dense, "--no_sparse_prediction"])
    assert results_of(sparse)["sparse_prediction"] is True and results_of(dense)["sparse_prediction"] is False
    assert results_of(sparse)["torch_compile"] is False

    # Same batches, same loss and gradients to float rounding: 5 AdamW updates end at the same weights.
    expected, actual = load_file(dense / "model.safetensors"), load_file(sparse / "model.safetensors")
    for name in expected:
        scale = expected[name].abs().max().item()
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-4 * scale + 1e-7, msg=name)
    assert results_of(sparse)["eval_mlm_loss"] == pytest.approx(results_of(dense)["eval_mlm_loss"], rel=1e-4)
    # A saved folder behaves as every checkpoint: dense logits when called with labels.
    assert json.loads((sparse / "config.json").read_text())["sparse_prediction"] is False


@pytest.mark.parametrize("model_type, sparse", [("bert", False), ("modernbert", True)])
def test_the_comparison_models_train_sparse_where_transformers_supports_it(model_type, sparse, corpus, tmp_path):
    train, valid = corpus
    out = tmp_path / model_type
    # 3 layers: ModernBERT's attention pattern (a global layer every 3) is then complete
    sizes = [a if a != "2" else "3" for a in TINY] if model_type == "modernbert" else TINY
    result = run_script(["--train_file", train, "--validation_file", valid, *sizes, "--model_type", model_type,
                         "--per_device_train_batch_size", "8", "--max_train_steps", "2", "--max_eval_samples", "8",
                         "--output_dir", out])
    assert results_of(out)["sparse_prediction"] is sparse
    # BertForMaskedLM has no such option: the run says that its head stays dense
    assert ("bert has no sparse prediction" in result.stderr) is (not sparse)
