"""`export_sentence_transformer` writes folders that sentence-transformers loads without this package, and whose
embeddings are `SequencePooler`'s on the backbone's last hidden state (every mode, concatenations, left padding,
trained pooling weights)."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers.sentence_transformer.modules import Pooling
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

import modeling_ponet as mp
from modeling_ponet.pooling import POOLING_MODES, SequencePooler
from ponet_training.data.minilm import minilm_path
from ponet_training.engine import run_folder
from ponet_training.models.pooled_classifier import PooledSequenceClassifier
from ponet_training.sentence_transformers import ST_POOLING_MODES, export_sentence_transformer, main
from without_package import HIDE_THIS_PROJECT


SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "python",
    "pooling networks mix tokens with max and mean pooling",
    "the movie was great",
]

# The child cannot import this repository's packages (without_package.HIDE_THIS_PROJECT).
CHILD = HIDE_THIS_PROJECT + textwrap.dedent(
    """
    import sys
    import torch
    from sentence_transformers import SentenceTransformer
    cases = torch.load(sys.argv[1])
    results = []
    for folder, sentences, padding_side in cases:
        model = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
        model.tokenizer.padding_side = padding_side
        results.append(model.encode(sentences, batch_size=len(sentences), convert_to_tensor=True))
    torch.save(results, sys.argv[2])
    """
)


def encode_without_this_package(cases, tmp_path) -> list:
    """`SentenceTransformer(folder, trust_remote_code=True).encode(sentences)` for each (folder, sentences,
    padding_side) case, in one process that cannot import this repository; returns the embeddings."""
    work = tmp_path / "child"
    work.mkdir()
    torch.save(cases, work / "cases.pt")
    (work / "child.py").write_text(CHILD)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(work / "modules"), PYTHONPATH="")
    env.setdefault("OMP_NUM_THREADS", "1")  # as many threads as the parent was given, else one
    result = subprocess.run([sys.executable, "child.py", "cases.pt", "out.pt"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HIDDEN ponet_training" in result.stdout and "HIDDEN modeling_ponet" in result.stdout
    assert "MISSING" not in result.stdout + result.stderr  # transformers' load report: no weight left out
    return torch.load(work / "out.pt")


def assert_embeddings_equal(got, expected):
    # fp32, two processes: allow a few float steps at the magnitude of the embeddings
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * scale)


def token_states(encoder, tokenizer, sentences, padding_side):
    """The package's backbone on the batch sentence-transformers builds: (last hidden state, attention mask)."""
    tokenizer.padding_side = padding_side
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=tokenizer.model_max_length,
                      return_tensors="pt")
    with torch.no_grad():
        return encoder(**batch).last_hidden_state, batch["attention_mask"]


def exported_pooler(folder, hidden_size, modes) -> SequencePooler:
    """A package `SequencePooler` holding the weights an export shipped (none for sentence-transformers' Pooling)."""
    pooler = SequencePooler(hidden_size, modes)
    weights = folder / "1_SentencePooling" / "model.safetensors"
    if weights.is_file():
        pooler.load_state_dict({k[len("pooler."):]: v for k, v in load_file(str(weights)).items()})
    return pooler


def module_type(folder) -> str:
    return json.loads((folder / "modules.json").read_text())[1]["type"]


def check_every_case(source, poolings, tmp_path):
    """Export `source` with each pooling, encode right- and left-padded batches without the package, and compare
    with the package's `SequencePooler` on the package's backbone."""
    encoder = AutoModel.from_pretrained(source).eval()
    folders = {pooling: export_sentence_transformer(source, tmp_path / pooling.replace("+", "_"), pooling=pooling)
               for pooling in poolings}
    tokenizer = AutoTokenizer.from_pretrained(next(iter(folders.values())))  # with the exported max_seq_length
    cases = [(str(folder), SENTENCES, side) for folder in folders.values() for side in ("right", "left")]
    got = encode_without_this_package(cases, tmp_path)
    index = 0
    for pooling, folder in folders.items():
        modes = pooling.split("+")
        native = all(mode in ST_POOLING_MODES for mode in modes)
        assert module_type(folder).endswith("Pooling" if native else "SentencePooling"), (pooling, module_type(folder))
        pooler = exported_pooler(folder, encoder.config.hidden_size, modes)
        for side in ("right", "left"):
            hidden, mask = token_states(encoder, tokenizer, SENTENCES, side)
            with torch.no_grad():
                expected = pooler(hidden, mask)
            assert got[index].shape == expected.shape, (pooling, side)
            assert_embeddings_equal(got[index], expected)
            index += 1


def perturb(module: torch.nn.Module):
    """Move learned weights away from their init, so a test sees whether trained weights were exported."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)


@pytest.fixture
def ponet_dir(tiny_config, tiny_tokenizer, tmp_path):
    folder = tmp_path / "ponet"
    mp.PoNetModel(tiny_config()).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_sentence_transformers_pooling_equals_sequence_pooler_where_the_export_uses_it(padding_side):
    lengths = torch.tensor([7, 1, 4, 5])
    positions = torch.arange(7)
    mask = (positions < lengths[:, None]) if padding_side == "right" else (positions >= 7 - lengths[:, None])
    mask = mask.long()
    hidden = torch.randn(4, 7, 16) * 3 - 1  # all negative in places, so `max` over padding would show
    for modes in [(mode,) for mode in ST_POOLING_MODES] + [tuple(ST_POOLING_MODES)]:
        ours = SequencePooler(16, modes)(hidden, mask)
        st_modes = tuple(ST_POOLING_MODES[m] for m in modes)
        theirs = Pooling(16, st_modes)({"token_embeddings": hidden, "attention_mask": mask})["sentence_embedding"]
        torch.testing.assert_close(theirs, ours, rtol=1e-6, atol=1e-6 * hidden.abs().max().item(), msg=str(modes))


def test_exported_ponet_encodes_as_sequence_pooler_for_every_mode_without_the_package(ponet_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="ponet_training.sentence_transformers"):
        check_every_case(ponet_dir, list(POOLING_MODES) + ["mean+attention", "cls+max"], tmp_path)
    untrained = [r.getMessage() for r in caplog.records if "untrained" in r.getMessage()]
    assert len(untrained) == 3, untrained  # weighted_sum, attention, mean+attention
    assert (tmp_path / "attention" / "modeling_ponet.py").is_file()  # the backbone's remote code travels along
    assert (tmp_path / "attention" / "sentence_pooling.py").is_file() and (tmp_path / "attention" / "pooling.py").is_file()


def test_exported_minilm_encodes_as_sequence_pooler_without_the_package(tmp_path):
    native = "+".join(ST_POOLING_MODES)  # cls+last+mean+max+weighted_mean: each mode is a slice of the concatenation
    check_every_case(minilm_path(), [native, "weighted_sum+attention+mean"], tmp_path)
    config = json.loads((tmp_path / native.replace("+", "_") / "1_Pooling" / "config.json").read_text())
    assert config["pooling_mode"] == ["cls", "lasttoken", "mean", "max", "weightedmean"]
    tokenizer_config = json.loads((tmp_path / native.replace("+", "_") / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == 512


def test_trained_pooling_weights_of_classifiers_survive_the_export(tiny_config, tiny_tokenizer, tmp_path, caplog):
    # a pooling-study classifier on a BERT backbone
    bert = BertModel(BertConfig(vocab_size=tiny_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                                pad_token_id=tiny_tokenizer.pad_token_id))
    study = PooledSequenceClassifier(bert, pooling="weighted_sum+attention", num_labels=3).eval()
    perturb(study.pooler)
    study.save_pretrained(tmp_path / "study")
    tiny_tokenizer.save_pretrained(tmp_path / "study")
    # a PoNet classifier fine-tuned with classifier_pooling
    ponet = mp.PoNetForSequenceClassification(tiny_config(num_labels=2, classifier_pooling="attention+mean")).eval()
    perturb(ponet.pooling)
    ponet.save_pretrained(tmp_path / "ponet_cls")
    tiny_tokenizer.save_pretrained(tmp_path / "ponet_cls")

    with caplog.at_level(logging.INFO, logger="ponet_training.sentence_transformers"):
        study_out = export_sentence_transformer(tmp_path / "study", tmp_path / "study_st")
        ponet_out = export_sentence_transformer(tmp_path / "ponet_cls", tmp_path / "ponet_st")
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "untrained" in m], messages
    assert sum("the classifier" in m and "left out" in m for m in messages) == 2, messages

    got = encode_without_this_package([(str(study_out), SENTENCES, "right"), (str(ponet_out), SENTENCES, "left")],
                                      tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "study")
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected_study = study(**batch).pooled_output
    tokenizer.padding_side = "left"
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected_ponet = ponet._pool(ponet.ponet(**batch), batch["attention_mask"])
    assert_embeddings_equal(got[0], expected_study)
    assert_embeddings_equal(got[1], expected_ponet)
    # and the weights are the trained ones, not a fresh init that happens to agree
    untrained = SequencePooler(32, "weighted_sum+attention")
    hidden = torch.randn(2, 5, 32)
    assert not torch.allclose(untrained(hidden), study.pooler(hidden))


def test_unknown_pooling_mode_is_refused_before_anything_is_written(ponet_dir, tmp_path):
    with pytest.raises(ValueError, match=r"`pooling` 'mean\+avg'.*choose from"):
        export_sentence_transformer(ponet_dir, tmp_path / "out", pooling="mean+avg")
    assert not (tmp_path / "out").exists()


def test_a_folder_without_weights_is_refused(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path / "tokenizer_only")
    with pytest.raises(FileNotFoundError, match="tokenizer_only holds no model weights"):
        export_sentence_transformer(tmp_path / "tokenizer_only", tmp_path / "out")


def test_a_folder_without_a_tokenizer_asks_for_tokenizer_name(tiny_config, tiny_tokenizer, tmp_path):
    mp.PoNetModel(tiny_config()).save_pretrained(tmp_path / "weights_only")
    with pytest.raises(ValueError, match="weights_only has no tokenizer files .*--tokenizer_name"):
        export_sentence_transformer(tmp_path / "weights_only", tmp_path / "out")
    tiny_tokenizer.save_pretrained(tmp_path / "tokenizer")
    export_sentence_transformer(tmp_path / "weights_only", tmp_path / "out", tokenizer_name=str(tmp_path / "tokenizer"))
    assert (tmp_path / "out" / "tokenizer.json").is_file()


def test_overwriting_an_export_deletes_only_what_an_export_wrote_never_a_foreign_file_or_its_source(ponet_dir,
                                                                                                   tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"out is not empty \(notes.txt\)"):
        export_sentence_transformer(ponet_dir, out)
    # The rule of every run folder: --overwrite_output_dir never deletes a file no run or export wrote.
    with pytest.raises(ValueError, match=r"holds notes.txt, which no run of these scripts wrote"):
        export_sentence_transformer(ponet_dir, out, overwrite_output_dir=True)
    assert (out / "notes.txt").read_text() == "mine" and not (out / "modules.json").exists()
    (out / "notes.txt").unlink()
    export_sentence_transformer(ponet_dir, out, pooling="max")
    export_sentence_transformer(ponet_dir, out, overwrite_output_dir=True)  # replaces the earlier export
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode"] == "mean"
    assert not (out / run_folder.LOCK_FILE).exists()
    # Its own source is never deleted: an export into the folder it reads is refused, the source intact.
    weights = (ponet_dir / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"`--model_name_or_path` .*out is read by this run, but "
                                         r"--overwrite_output_dir would delete"):
        export_sentence_transformer(out, out, overwrite_output_dir=True)
    assert (out / "model.safetensors").is_file() and (out / "modules.json").is_file()
    # A source inside the folder is an input: kept when the export overwrites around it.
    export_sentence_transformer(ponet_dir, out / "source_copy")
    export_sentence_transformer(out / "source_copy", out, overwrite_output_dir=True)
    assert (out / "source_copy" / "model.safetensors").is_file() and (out / "modules.json").is_file()
    assert (ponet_dir / "model.safetensors").read_bytes() == weights


def test_command_line_writes_the_pooling_and_the_sequence_length(ponet_dir, tmp_path):
    main([str(ponet_dir), str(tmp_path / "out"), "--pooling", "last+mean", "--max_seq_length", "64"])
    assert json.loads((tmp_path / "out" / "1_Pooling" / "config.json").read_text())["pooling_mode"] == [
        "lasttoken", "mean"]
    assert json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())["model_max_length"] == 64
    with pytest.raises(ValueError, match="`max_seq_length` 4096 must be between 1 and .*128"):
        main([str(ponet_dir), str(tmp_path / "long"), "--max_seq_length", "4096"])
