"""Export an encoder and a `SequencePooler` pooling as a sentence-transformers folder.

    python -m ponet_training.sentence_transformers MODEL OUTPUT_DIR --pooling mean

writes a folder that `SentenceTransformer(OUTPUT_DIR, trust_remote_code=True)` loads without this package:
the backbone (PoNet with its remote-code files, or any `AutoModel` backbone such as BERT or MiniLM) and its
tokenizer at the root, then one pooling module:

- `cls`, `last`, `mean`, `max`, `weighted_mean` and concatenations of them: sentence-transformers' own `Pooling`
  (`last` is its `lasttoken`, `weighted_mean` its `weightedmean`). Their definitions equal `SequencePooler`'s on
  every row with a real token, with right and left padding (tests/test_sentence_transformers_export.py pins it).
- `weighted_sum`, `attention`, or a concatenation with one of them: `sentence_pooling.py` (from
  `sentence_transformers_files/`) and `pooling.py` (from `modeling_ponet/`), shipped in the folder, with the
  learned weights in `1_SentencePooling/model.safetensors`.

MODEL may be a plain backbone, a pooling-study `PooledSequenceClassifier` folder or a
`PoNetForSequenceClassification` fine-tuned with `classifier_pooling`: from a classifier only the encoder and its
pooling (trained weights included) are exported, and its pooling is the default.

OUTPUT_DIR follows the rule of every run folder (`engine.run_folder.RunFolder`): a non-empty folder is refused, and
`--overwrite_output_dir` deletes only what an earlier export or run wrote there, never a file it did not write and
never the model being exported. The export is written into `OUTPUT_DIR/saving.tmp` and moved in once complete: a
failure (a full disk) is one line naming the file and the free space, and leaves nothing behind.
"""

import argparse
import importlib.metadata
import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

import modeling_ponet
from modeling_ponet.pooling import SequencePooler, parse_pooling_modes

from ponet_training.data.tokenizer_loading import load_tokenizer
from ponet_training.engine.run_folder import RunFolder
from ponet_training.engine.saving import SAVING_DIR, move_into, saving
from ponet_training.models.pooled_classifier import HEAD_CONFIG_NAME, HEAD_WEIGHTS_NAME


logger = logging.getLogger(__name__)

# Our mode -> sentence-transformers' `Pooling` mode, where the definitions agree.
ST_POOLING_MODES = {"cls": "cls", "last": "lasttoken", "mean": "mean", "max": "max", "weighted_mean": "weightedmean"}
LEARNED_MODES = {"weighted_sum": ("weighted_sum_scorer.",), "attention": ("attention_key.", "attention_query")}
MODULE_FILE = Path(__file__).resolve().parent / "sentence_transformers_files" / "sentence_pooling.py"
POOLING_FILE = Path(modeling_ponet.__file__).resolve().parent / "pooling.py"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _check_has_weights(model_name_or_path: str):
    """A local folder must hold weights; a Hub id is left to `from_pretrained`."""
    path = Path(model_name_or_path)
    if path.is_dir() and not any((path / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(
            f"{model_name_or_path} holds no model weights (none of {', '.join(WEIGHT_FILES)}): pass a folder written "
            "by save_pretrained or a Hub model id"
        )


def _load_source(model_name_or_path: str, trust_remote_code: bool):
    """(encoder, trained pooling mode string or None, trained pooler state dict, cls from a pooler layer?)."""
    head_config_file = Path(model_name_or_path) / HEAD_CONFIG_NAME
    if head_config_file.is_file():  # a pooling-study PooledSequenceClassifier folder
        head_config = json.loads(head_config_file.read_text())
        encoder = AutoModel.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        head = load_file(str(Path(model_name_or_path) / HEAD_WEIGHTS_NAME))
        state = {k[len("pooler."):]: v for k, v in head.items() if k.startswith("pooler.")}
        logger.info(f"{model_name_or_path} is a PooledSequenceClassifier: exporting its encoder and pooling "
                    f"{head_config['pooling']!r}; the classifier ({head_config['num_labels']} labels) is left out")
        return encoder, head_config["pooling"], state, head_config.get("cls_from_pooler", True)
    config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    if config.model_type == "ponet" and "PoNetForSequenceClassification" in (config.architectures or []):
        classifier = AutoModelForSequenceClassification.from_pretrained(model_name_or_path)
        logger.info(f"{model_name_or_path} is a PoNetForSequenceClassification: exporting its encoder and pooling "
                    f"{config.classifier_pooling!r}; the classifier ({config.num_labels} labels) is left out")
        encoder = classifier.ponet
        if encoder.pooler is None:
            # AutoModel builds PoNet with its pooler layer: give the export an (unused, freshly initialised) one so
            # that every load of it does not report missing weights
            encoder = modeling_ponet.PoNetModel(classifier.config)
            missing, unexpected = encoder.load_state_dict(classifier.ponet.state_dict(), strict=False)
            if unexpected or any(not key.startswith("pooler.") for key in missing):
                raise RuntimeError(f"Cannot move the encoder of {model_name_or_path}: missing {missing}, "
                                   f"unexpected {unexpected}")
        return encoder.eval(), config.classifier_pooling, classifier.pooling.state_dict(), True
    return AutoModel.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code), None, {}, False


def _export_pooler(hidden_size: int, modes: tuple, trained: dict, initializer_range: float) -> SequencePooler:
    """The pooler to ship: trained weights for the learned modes the source has, our classifiers' init otherwise."""
    pooler = SequencePooler(hidden_size, modes)
    # as PooledSequenceClassifier and PoNetPreTrainedModel initialise it: N(0, initializer_range), zero bias
    for sub in pooler.modules():
        if isinstance(sub, torch.nn.Linear):
            torch.nn.init.normal_(sub.weight, mean=0.0, std=initializer_range)
            torch.nn.init.zeros_(sub.bias)
    if hasattr(pooler, "attention_query"):
        torch.nn.init.normal_(pooler.attention_query, mean=0.0, std=initializer_range)
    state = pooler.state_dict()
    for mode in modes:
        prefixes = LEARNED_MODES.get(mode, ())
        keys = [k for k in state if k.startswith(prefixes)] if prefixes else []
        if keys and all(k in trained for k in keys):
            state.update({k: trained[k] for k in keys})
        elif keys:
            logger.warning(f"The {mode!r} pooling weights are untrained (initialised as the package's classifiers "
                           "do): fine-tune the exported model before relying on its embeddings")
    pooler.load_state_dict(state)
    return pooler


def _max_seq_length(tokenizer, config, requested: int | None) -> int:
    positions = getattr(config, "max_position_embeddings", None)
    if requested is not None:
        if requested < 1 or (positions is not None and requested > positions):
            raise ValueError(f"`max_seq_length` {requested} must be between 1 and the model's "
                             f"max_position_embeddings ({positions})")
        return requested
    # tokenizers without a limit report a huge sentinel (int(1e30)); the position table is then the limit
    limits = [n for n in (tokenizer.model_max_length, positions) if n is not None and n < 1_000_000]
    return min(limits) if limits else 512


def _write_json(path: Path, data):
    path.write_text(json.dumps(data, indent=2) + "\n")


def export_sentence_transformer(
    model_name_or_path: str,
    output_dir: str,
    pooling=None,
    max_seq_length: int | None = None,
    tokenizer_name: str | None = None,
    trust_remote_code: bool = False,
    overwrite_output_dir: bool = False,
) -> Path:
    """Write `output_dir` for `SentenceTransformer(output_dir, trust_remote_code=True)`; returns its path.

    Args:
        model_name_or_path: a backbone folder or Hub id, a `PooledSequenceClassifier` folder or a
            `PoNetForSequenceClassification` checkpoint.
        pooling: a mode of `POOLING_MODES`, several joined by `+`; None means the classifier's trained pooling, or
            `"mean"` for a plain backbone. Learned modes take the source's trained weights when it has them.
        max_seq_length: truncation length; default the tokenizer's `model_max_length`, capped by the position table.
        tokenizer_name: where the tokenizer is, when not in `model_name_or_path`.
        trust_remote_code: for backbones whose code lives with their weights (not needed for PoNet here).
        overwrite_output_dir: replace what an earlier export (or run) wrote in a non-empty `output_dir`; a file it
            did not write, and the model being exported, are never deleted (the export is refused instead).
    """
    if pooling is not None:
        try:
            parse_pooling_modes(pooling)
        except ValueError as err:
            raise ValueError(f"`pooling` {pooling!r}: {err}") from None
    sources = {"model_name_or_path": model_name_or_path, "tokenizer_name": tokenizer_name}
    folder = RunFolder(output_dir, overwrite=overwrite_output_dir, name="output_dir", how_to_resume=None,
                       inputs={flag: Path(path).resolve() for flag, path in sources.items()
                               if path is not None and Path(path).exists()})
    with folder:
        folder.claim()
        return _export(model_name_or_path, folder.path, pooling, max_seq_length, tokenizer_name, trust_remote_code)


def _export(model_name_or_path, folder: Path, pooling, max_seq_length, tokenizer_name, trust_remote_code) -> Path:
    """Write the export into `folder/saving.tmp` and move it in once complete (`modules.json` last): a failed export
    is one `SaveError` line and leaves nothing that sentence-transformers would load."""
    _check_has_weights(model_name_or_path)
    output = folder / SAVING_DIR
    if output.exists():
        shutil.rmtree(output)  # the leftover of an interrupted export
    with saving("the sentence-transformers export", folder, output, after="Nothing was written there: free space "
                                                                          "and export again"):
        modes, max_length, encoder = _write_export(model_name_or_path, output, pooling, max_seq_length,
                                                   tokenizer_name, trust_remote_code)
        move_into(output, folder, last=("modules.json",))
    logger.info(f"Wrote {folder} ({type(encoder).__name__}, pooling {'+'.join(modes)!r}, "
                f"max_seq_length {max_length}): SentenceTransformer({str(folder)!r}, trust_remote_code=True)")
    return folder


def _write_export(model_name_or_path, output: Path, pooling, max_seq_length, tokenizer_name, trust_remote_code):
    """Write the export's files into `output`; returns (pooling modes, max_seq_length, encoder)."""

    encoder, trained_pooling, trained_state, cls_from_pooler = _load_source(model_name_or_path, trust_remote_code)
    modes = parse_pooling_modes(pooling or trained_pooling or "mean")
    if trained_pooling is not None and "cls" in modes and cls_from_pooler:
        logger.warning("`cls` in the export is the first real token's state (sentence-transformers has no "
                       "pooler layer); the classifier used its pooler output tanh(Dense(h[CLS])) instead")
    if trained_pooling is not None and "+".join(modes) != trained_pooling:
        logger.info(f"Exporting pooling {'+'.join(modes)!r} instead of the trained {trained_pooling!r}: only the "
                    "learned modes both share keep their trained weights")
    tokenizer = load_tokenizer(str(tokenizer_name or model_name_or_path), trust_remote_code=trust_remote_code)
    tokenizer.model_max_length = _max_seq_length(tokenizer, encoder.config, max_seq_length)

    encoder.save_pretrained(output)  # PoNet writes its remote-code files next to the weights
    tokenizer.save_pretrained(output)
    hidden_size = encoder.config.hidden_size

    if all(mode in ST_POOLING_MODES for mode in modes):
        pooling_module = ("1_Pooling", "sentence_transformers.sentence_transformer.modules.pooling.Pooling")
        (output / "1_Pooling").mkdir()
        st_modes = [ST_POOLING_MODES[mode] for mode in modes]
        _write_json(output / "1_Pooling" / "config.json", dict(
            embedding_dimension=hidden_size, pooling_mode=st_modes[0] if len(st_modes) == 1 else st_modes,
            include_prompt=True))
    else:
        pooling_module = ("1_SentencePooling", "sentence_pooling.SentencePooling")
        initializer_range = getattr(encoder.config, "initializer_range", None) or 0.02
        pooler = _export_pooler(hidden_size, modes, trained_state, initializer_range)
        (output / "1_SentencePooling").mkdir()
        _write_json(output / "1_SentencePooling" / "config.json",
                    dict(embedding_dimension=hidden_size, pooling_mode="+".join(modes)))
        save_file({f"pooler.{k}": v.detach().float().contiguous() for k, v in pooler.state_dict().items()},
                  str(output / "1_SentencePooling" / "model.safetensors"))
        shutil.copyfile(MODULE_FILE, output / MODULE_FILE.name)
        shutil.copyfile(POOLING_FILE, output / POOLING_FILE.name)

    _write_json(output / "modules.json", [
        dict(idx=0, name="0", path="", type="sentence_transformers.base.modules.transformer.Transformer"),
        dict(idx=1, name="1", path=pooling_module[0], type=pooling_module[1]),
    ])
    _write_json(output / "sentence_bert_config.json", dict(
        transformer_task="feature-extraction",
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings"))
    versions = {name: importlib.metadata.version(dist) for name, dist in
                (("sentence_transformers", "sentence-transformers"), ("transformers", "transformers"), ("pytorch", "torch"))}
    _write_json(output / "config_sentence_transformers.json", dict(
        __version__=versions, model_type="SentenceTransformer", prompts={}, default_prompt_name=None,
        similarity_fn_name="cosine"))
    return modes, tokenizer.model_max_length, encoder


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export an encoder and its pooling as a sentence-transformers folder.")
    parser.add_argument("model_name_or_path", help="Backbone folder or Hub id, PooledSequenceClassifier folder, or "
                                                   "PoNetForSequenceClassification checkpoint.")
    parser.add_argument("output_dir", help="Folder to write.")
    parser.add_argument("--pooling", default=None,
                        help="Pooling mode(s) joined by '+'; default the classifier's trained pooling, else mean.")
    parser.add_argument("--max_seq_length", type=int, default=None,
                        help="Truncation length (default: the tokenizer's model_max_length).")
    parser.add_argument("--tokenizer_name", default=None, help="Tokenizer folder or id, if not model_name_or_path.")
    parser.add_argument("--trust_remote_code", action="store_true", help="Allow a backbone's own remote code.")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="Replace what an earlier export wrote in a non-empty output_dir (other files are kept).")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    export_sentence_transformer(**vars(args))


if __name__ == "__main__":
    main()
