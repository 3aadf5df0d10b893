#!/usr/bin/env bash
# Every real-data result of docs/results.md, on 2 CPU cores, offline after set-up (about 3 hours in all):
#   1. PoNet and BERT pretrained at an equal budget (one core each, at the same time), then a GPT-2 of the same
#      size on the same text, batches and steps; each fine-tuned on the movie sentences (experiments/equal_budget.py);
#   2. the pooling study on the human-rated movie sentences: the real all-MiniLM-L6-v2 frozen (and its
#      random-init control) and fine-tuned; the three backbones of step 1 frozen and fine-tuned;
#   3. the frozen MiniLM on the tweets (does the ranking transfer?).
# Run it again after an interruption: finished stages and runs are skipped, pretraining resumes from checkpoints.
# On a GPU, drop the taskset/OMP_NUM_THREADS parts and run the stages one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs}
M=$(python -m ponet_training.data.minilm)       # the real MiniLM (bert-base-uncased vocabulary)

# 1. Equal budget: 800 steps of 32 x 128 tokens, 4 layers x 128, bf16 autocast; PoNet on core 0, BERT on core 1.
EB=(--output_dir "$OUT/equal_budget" --max_train_steps 800 --num_warmup_steps 80 --eval_steps 100
    --checkpointing_steps 100 --mixed_precision bf16)
[ -f "$OUT/equal_budget/corpus/train.jsonl" ] || python -m ponet_training.data.python_docs --output_dir "$OUT/equal_budget/corpus"
OMP_NUM_THREADS=1 taskset -c 0 python experiments/equal_budget.py "${EB[@]}" --model_types ponet &
OMP_NUM_THREADS=1 taskset -c 1 python experiments/equal_budget.py "${EB[@]}" --model_types bert &
wait
python experiments/equal_budget.py "${EB[@]}" --model_types gpt2     # and the table with all three

# 2. Pooling study, movie sentences. Frozen: a probe (with the learned poolers' weights) over cached token states.
STUDY=(--seeds 42 43 44 --max_length 64 --per_device_train_batch_size 32)
MOVIES=(--dataset_name vader_movies)
python finetune/run_pooling_study.py "${STUDY[@]}" "${MOVIES[@]}" --model_name_or_path "$M" --regimes frozen \
    --frozen_num_train_epochs 5 --probe_learning_rate 1e-3 --output_dir "$OUT/pooling_real_movies_frozen"
python finetune/run_pooling_study.py "${STUDY[@]}" "${MOVIES[@]}" --config_name "$M" --tokenizer_name "$M" --regimes frozen \
    --frozen_num_train_epochs 5 --probe_learning_rate 1e-3 --output_dir "$OUT/pooling_real_movies_frozen_random"
# Full fine-tuning of the real MiniLM: one epoch over the first 4000 training sentences (of 8056), bf16 autocast
# (about 2 minutes a run on one core).
python finetune/run_pooling_study.py "${STUDY[@]}" "${MOVIES[@]}" --model_name_or_path "$M" --regimes full \
    --full_num_train_epochs 1 --learning_rate 5e-5 --max_train_samples 4000 --mixed_precision bf16 \
    --output_dir "$OUT/pooling_real_movies_full"
# PoNet, BERT and GPT-2 pretrained in step 1: frozen and full; the raw [CLS] state for cls (--no_cls_pooler: BERT's
# pooler was never trained, GPT-2 has none). Full at lr 1e-3: these tiny backbones barely moved in one epoch at 2e-4
# (one trial run, PoNet, mean, seed 42: 74.1% dev accuracy at 1e-3, 69.4% at 5e-4, about 65% at 2e-4).
EBO="$OUT/equal_budget"
python finetune/run_pooling_study.py "${STUDY[@]}" "${MOVIES[@]}" \
    --model_name_or_path "$EBO/ponet-pretrain" "$EBO/bert-pretrain" "$EBO/gpt2-pretrain" --regimes frozen full \
    --frozen_num_train_epochs 5 --probe_learning_rate 1e-3 --full_num_train_epochs 1 --learning_rate 1e-3 \
    --max_train_samples 4000 --no_cls_pooler --mixed_precision bf16 --output_dir "$OUT/pooling_real_movies_scratch"

# 3. Tweets: the frozen MiniLM.
python finetune/run_pooling_study.py "${STUDY[@]}" --dataset_name vader_tweets --model_name_or_path "$M" \
    --regimes frozen --frozen_num_train_epochs 5 --probe_learning_rate 1e-3 --output_dir "$OUT/pooling_real_tweets_frozen"
