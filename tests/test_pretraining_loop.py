"""The shared Accelerate loop helpers (ponet_training: run, dataloaders, optimization, checkpoints) used by every
script."""

import argparse

import pytest
import torch

from modeling_ponet import PoNetForPreTraining
from ponet_training.engine.checkpoints import TrainingProgress, list_checkpoints
from ponet_training.engine.dataloaders import EpochShuffleSampler
from ponet_training.engine.optimization import create_optimizer, create_scheduler, optimizer_grouped_parameters, \
    resolve_train_steps
from ponet_training.engine.run import add_training_args, check_training_args, write_all_results


def parse(*argv):
    return add_training_args(argparse.ArgumentParser()).parse_args([str(a) for a in argv])


def test_no_weight_decay_on_biases_and_layer_norms_and_tied_weights_once(tiny_config):
    model = PoNetForPreTraining(tiny_config())
    decay, no_decay = optimizer_grouped_parameters(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}  # named_parameters lists tied weights once
    expected_no_decay = {n for n in names.values() if n.endswith("bias") or "LayerNorm" in n}
    assert {names[id(p)] for p in no_decay["params"]} == expected_no_decay
    assert {names[id(p)] for p in decay["params"]} == set(names.values()) - expected_no_decay
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_linear_schedule_warms_up_then_decays_to_zero(tiny_config):
    args = parse("--learning_rate", 1e-3, "--num_warmup_steps", 2, "--max_train_steps", 10)
    optimizer = create_optimizer(PoNetForPreTraining(tiny_config()), args)
    scheduler = create_scheduler(optimizer, args)
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[:3] == pytest.approx([0.0, 5e-4, 1e-3])
    assert rates[3:] == sorted(rates[3:], reverse=True) and scheduler.get_last_lr()[0] == 0.0


def test_epoch_shuffle_depends_only_on_seed_and_epoch():
    sampler = EpochShuffleSampler(50, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert list(EpochShuffleSampler(50, seed=3)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(EpochShuffleSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_train_steps_follow_epochs_or_max_steps():
    args = parse("--num_train_epochs", 2, "--gradient_accumulation_steps", 3)
    assert resolve_train_steps(args, 10) == 4 and args.max_train_steps == 8
    args = parse("--max_train_steps", 9)
    resolve_train_steps(args, 4)
    assert args.num_train_epochs == 3
    with pytest.raises(ValueError, match="--max_train_steps"):
        resolve_train_steps(parse(), None)


def test_training_progress_counts_batches_and_updates():
    progress = TrainingProgress()
    for sync in (False, True, False, True, True):
        progress.advance(sync)
    assert (progress.batches_in_epoch, progress.completed_steps) == (5, 3)
    assert progress.skip_batches(0) == 5 and progress.skip_batches(1) == 0
    progress.end_epoch()
    assert (progress.epoch, progress.batches_in_epoch) == (1, 0)


def test_bad_training_flags_get_clear_errors(tmp_path):
    with pytest.raises(SystemExit):
        parse("--checkpointing_steps", "often")
    assert parse("--checkpointing_steps", "epoch").checkpointing_steps == "epoch"
    assert parse("--checkpointing_steps", "5").checkpointing_steps == 5
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        check_training_args(parse("--gradient_accumulation_steps", 0))
    with pytest.raises(ValueError, match="push_to_hub"):
        check_training_args(parse("--push_to_hub"))
    assert list_checkpoints(tmp_path / "absent") == []


def test_all_results_are_plain_json(tmp_path):
    path = write_all_results(tmp_path, {"a": torch.tensor(0.5), "b": [torch.tensor([1, 2])], "c": {"d": 1}})
    assert path.read_text().replace(" ", "").replace("\n", "") == '{"a":0.5,"b":[[1,2]],"c":{"d":1}}'
