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


def run_loop(*argv, batches=8, loss_fn=None):
    """The shared loop (`loop.train`) over `batches` batches per epoch of a one-weight regression, as
    [(step, evaluate, end_of_epoch), ...], with the losses each `loss_fn` call returned."""
    from accelerate import Accelerator

    from ponet_training.engine import loop

    args = parse("--learning_rate", 0.1, *argv)
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=args.gradient_accumulation_steps)
    model = torch.nn.Linear(1, 1, bias=False)
    data = [{"x": torch.ones(2, 1), "attention_mask": torch.ones(2, 3)} for _ in range(batches)]
    optimizer = create_optimizer(model, args)
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, torch.utils.data.DataLoader(
        data, batch_size=None))
    resolve_train_steps(args, len(dataloader))
    scheduler = create_scheduler(optimizer, args)
    seen = []

    def squared_error(model, batch):
        loss = (model(batch["x"]) - 2 * batch["x"]).pow(2).mean()
        seen.append(loss.item())
        return {"loss": loss, "half": loss / 2}

    updates = list(loop.train(accelerator, args, model, dataloader, optimizer, scheduler, TrainingProgress(),
                              loss_fn=loss_fn or squared_error))
    return [(u.step, u.evaluate, u.end_of_epoch, u.loss) for u in updates], seen


def test_evaluation_is_due_every_eval_steps_else_at_each_epochs_end_and_always_at_the_runs_end():
    updates, seen = run_loop("--num_train_epochs", 2, "--eval_steps", 3, batches=4)
    assert [step for step, evaluate, _, _ in updates if evaluate] == [3, 6, 8]  # not at the end of epoch 1 (step 4)
    assert len(seen) == 8
    updates, _ = run_loop("--num_train_epochs", 2, batches=4)
    assert [step for step, evaluate, _, _ in updates if evaluate] == [4, 8]
    assert [(step, evaluate) for step, evaluate, end, _ in updates if end] == [(4, True), (8, False)]
    # The run ends mid-epoch (--max_train_steps): evaluated once, at its last update.
    updates, _ = run_loop("--max_train_steps", 5, "--eval_steps", 2, batches=4)
    assert [step for step, evaluate, _, _ in updates if evaluate] == [2, 4, 5]
    updates, _ = run_loop("--max_train_steps", 6, "--gradient_accumulation_steps", 2, batches=4)
    assert [step for step, evaluate, _, _ in updates if evaluate] == [2, 4, 6]


def test_the_loop_optimizes_the_loss_fns_loss_and_reports_the_update_mean():
    from ponet_training.engine.loop import evaluation_due

    updates, seen = run_loop("--max_train_steps", 2, "--gradient_accumulation_steps", 2, batches=4)
    assert len(seen) == 4 and seen[2] < seen[0]  # the loss_fn's "loss" is what the optimizer lowers
    losses = [loss for *_, loss in updates if loss is not None]
    torch.testing.assert_close(losses, [(seen[0] + seen[1]) / 2, (seen[2] + seen[3]) / 2], rtol=1e-6, atol=0)
    args = parse("--eval_steps", 5)
    assert evaluation_due(args, 10, end_of_epoch=False, end_of_run=False, last_evaluated=None)
    assert not evaluation_due(args, 10, end_of_epoch=True, end_of_run=True, last_evaluated=10)
    assert not evaluation_due(args, 7, end_of_epoch=True, end_of_run=False, last_evaluated=5)
