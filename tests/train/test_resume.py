"""Resume loses nothing: a run stopped at any kind of step (an evaluating one, a checkpointing one, one in
between, the last of an epoch, one mid-epoch) by Ctrl-C or by a kill right after a save, then resumed,
writes the metrics.csv and reports the result of the run that was never stopped, with the same weights."""

import csv
import math
import os
import signal

import pytest
import torch
from torch import nn

from test_trainer import Tiny, sample  # the model and data of the Trainer's tests
from test_trainer import mse as loss_fn

from gseq.train import Trainer, TrainingInterrupted


class Batches:
    """A re-iterable of batches in a shuffled order drawn from its own generator, as NeighborLoader's."""

    def __init__(self, n=5):
        g = torch.Generator().manual_seed(7)
        self.items = [sample(g) for _ in range(n)]
        self.generator = torch.Generator().manual_seed(11)

    def __iter__(self):
        for i in torch.randperm(len(self.items), generator=self.generator).tolist():
            yield self.items[i]


def evaluate_fn():
    x, y = sample(torch.Generator().manual_seed(123))

    def evaluate(model):
        val_loss = nn.functional.mse_loss(model(x), y)
        return {"val_loss": val_loss, "score": math.sin(1e4 * float(val_loss))}  # no trend: best, patience matter

    return evaluate


class Killed(BaseException):
    """Stands for kill -9 right after a save: nothing after it runs, nothing else is written."""


class StopAt:
    def __init__(self, step, how):
        self.step, self.how = step, how

    def on_step_end(self, trainer, step, logs):
        if step == self.step and self.how == "sigint":
            os.kill(os.getpid(), signal.SIGINT)

    def on_checkpoint(self, trainer, path):
        if trainer.step == self.step and self.how == "kill":
            raise Killed


def run(out, *, stop=None, resume=False, data="sampler", **kw):
    torch.manual_seed(0)
    model = Tiny()
    settings = dict(optimizer="adam", lr=1e-2, clip_grad_norm=1.0, eval_every=3, checkpoint_every=2, seed=3,
                    monitor="score", patience=4, keep_best=True, progress=False, device="cpu", out_dir=out)
    settings.update(kw)
    if data == "sampler":
        settings.setdefault("max_steps", 20)
    trainer = Trainer(model, callbacks=[stop] if stop else [], **settings)
    result = trainer.fit(loss_fn, sample if data == "sampler" else Batches(), evaluate_fn(), resume=resume)
    return model, result


def rows(out):
    with open(out / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def stopped_then_resumed(tmp_path, step, how, **kw):
    out = tmp_path / f"{how}{step}"
    with pytest.raises(TrainingInterrupted if how == "sigint" else Killed):
        run(out, stop=StopAt(step, how), **kw)
    return run(out, resume=True, **kw), out


# step 6: evaluates and checkpoints; 9: evaluates only; 8: checkpoints only; 7: neither; 1: the first
@pytest.mark.parametrize("step", [1, 6, 7, 8, 9])
def test_ctrl_c_at_any_kind_of_step_then_resume_is_the_uninterrupted_run(tmp_path, step):
    model, result = run(tmp_path / "full")
    (resumed, again), out = stopped_then_resumed(tmp_path, step, "sigint")
    assert rows(out) == rows(tmp_path / "full")  # every evaluation row, the interrupted step's included
    assert {k: again[k] for k in ("step", "stop_reason", "best_step", "best_metric", "last_eval")} == \
        {k: result[k] for k in ("step", "stop_reason", "best_step", "best_metric", "last_eval")}
    for (k, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("step", [2, 4])  # a kill right after a checkpoint between two evaluations
def test_the_first_row_after_a_kill_averages_every_step_since_the_last_row(tmp_path, step):
    _, result = run(tmp_path / "full")
    (_, again), out = stopped_then_resumed(tmp_path, step, "kill")
    assert rows(out) == rows(tmp_path / "full") and again["best_step"] == result["best_step"]


@pytest.mark.parametrize("step, how", [(5, "sigint"), (4, "kill"), (7, "sigint"), (10, "kill")])
def test_an_iterable_with_a_generator_resumes_its_order_at_an_epoch_end_and_mid_epoch(tmp_path, step, how):
    # 5 batches per epoch: step 5 and 10 end an epoch, 4 and 7 lie inside one
    model, result = run(tmp_path / "full", data="batches", max_epochs=3)
    (resumed, again), out = stopped_then_resumed(tmp_path, step, how, data="batches", max_epochs=3)
    assert rows(out) == rows(tmp_path / "full") and again["epoch"] == result["epoch"] == 3
    for (k, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_of_a_finished_run_says_that_nothing_was_trained(tmp_path):
    run(tmp_path / "run", max_steps=6, patience=None)
    _, result = run(tmp_path / "run", max_steps=4, resume=True, patience=None)
    assert result["resumed_from"] == 6 and result["step"] == 6
    _, result = run(tmp_path / "run", max_steps=9, resume=True, patience=None)
    assert result["resumed_from"] == 6 and result["step"] == 9
