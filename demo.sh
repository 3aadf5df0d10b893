#!/usr/bin/env bash
# The main job on its embedded default, offline, on CPU: pretrain a tiny PoNet (MLM + SSO) on documents built
# from the Python standard library's docstrings, with a WordPiece tokenizer trained on them; fine-tune it on a
# generated MRPC-style pair task with run_glue.py; evaluate it (dev metrics, GLUE-style test predictions).
# Usage: bash demo.sh [output folder, default outputs/demo]
set -euo pipefail
cd "$(dirname "$0")"
# torch first and pinned: an unpinned torch would pull several GB of CUDA packages.
python -m pip install -q torch==2.13.0
# The training extras (accelerate, datasets, metrics, sentence splitting): the base install is the model alone.
python -m pip install -q -e ".[train]"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
out=${1:-outputs/demo}
start=$(date +%s)

echo "== 1/3 pretraining (MLM + SSO) on the stdlib-docstring corpus -> $out/pretrain"
python pretrain/run_pretraining.py --output_dir "$out/pretrain"

echo "== 2/3 fine-tuning on a generated MRPC-style pair task -> $out/finetune"
python finetune/make_toy_task.py --output_dir "$out/toy_task"
python finetune/run_glue.py --model_name_or_path "$out/pretrain" --task_name mrpc --glue_dir "$out/toy_task" \
    --max_length 64 --per_device_train_batch_size 16 --learning_rate 1e-3 --num_train_epochs 10 \
    --metric_for_best_model accuracy --output_dir "$out/finetune"

echo "== 3/3 evaluation"
python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
pre = json.load(open(f"{out}/pretrain/all_results.json"))
fin = json.load(open(f"{out}/finetune/all_results.json"))
print(f"pretraining  : MLM accuracy {pre['eval_mlm_accuracy']:.3f} (loss {pre['eval_mlm_loss']:.3f}, "
      f"perplexity {pre['eval_perplexity']:.1f}), SSO accuracy {pre['eval_sso_accuracy']:.3f} (chance 0.333)")
print(f"fine-tuning  : dev accuracy {fin['eval_accuracy']:.3f}, F1 {fin['eval_f1']:.3f} (chance 0.5)")
print(f"outputs      : {out}/pretrain (model, tokenizer, model card), {out}/finetune (model, model card, "
      f"glue_submission/MRPC.tsv)")
PY
echo "demo finished in $(( $(date +%s) - start )) s"
