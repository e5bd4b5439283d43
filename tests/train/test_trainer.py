import csv
import json

import pytest
import torch
from torch import nn

from gseq.train import Trainer, load_checkpoint, save_checkpoint


class Tiny(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Dropout(0.1), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def sample(generator):
    x = torch.randn(32, 2, generator=generator)
    return x, x[:, 0] - 2 * x[:, 1]


def mse(model, batch):
    x, y = batch
    return {"loss": nn.functional.mse_loss(model(x), y), "batch_mean": y.mean()}


def make_eval():
    g = torch.Generator().manual_seed(123)
    x, y = sample(g)
    return lambda model: {"val_loss": nn.functional.mse_loss(model(x), y)}


def test_trainer_learns_and_writes_outputs(tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    trainer = Trainer(model, lr=1e-2, max_steps=300, eval_every=50, monitor="val_loss", mode="min",
                      seed=0, progress=False, device="cpu", out_dir=tmp_path, config={"task": "tiny"})
    evaluate = make_eval()
    before = evaluate(model)["val_loss"].item()
    result = trainer.fit(mse, sample, evaluate)
    assert result["step"] == 300 and result["stop_reason"] == "max_steps"
    assert trainer.last_eval["val_loss"] < 0.1 * before
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [50, 100, 150, 200, 250, 300]
    assert {"loss", "batch_mean", "val_loss", "seconds"} <= set(rows[0])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["task"] == "tiny" and config["trainer"]["max_steps"] == 300
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 300


def run_tiny(steps, out, resume=False, seed=0, **settings):
    """A Tiny model trained for ``steps`` (evaluated every 7) in ``out``, its weights seeded by ``seed``."""
    torch.manual_seed(seed)
    model = Tiny()
    trainer = Trainer(model, max_steps=steps, eval_every=7, seed=1, progress=False, device="cpu", out_dir=out,
                      **settings)
    trainer.fit(mse, sample, make_eval(), resume=resume)
    return model, trainer


def test_resume_is_exact(tmp_path):
    def run(steps, out, resume=False, seed=0):
        return run_tiny(steps, out, resume, seed, optimizer="rmsprop", lr=1e-2, clip_grad_norm=1.0)

    full, _ = run(40, tmp_path / "full")
    run(25, tmp_path / "split")
    # a fresh model with other initial weights: everything must come from the checkpoint
    resumed, trainer = run(40, tmp_path / "split", resume=True, seed=99)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert [r["step"] for r in trainer.history] == [7, 14, 21, 25, 28, 35, 40]


def test_epochs_over_an_iterable_and_callbacks():
    events = []

    class Recorder:
        def on_fit_start(self, trainer):
            events.append("start")

        def on_step_end(self, trainer, step, logs):
            events.append(("step", step, trainer.epoch))

        def on_fit_end(self, trainer, result):
            events.append(("end", result["epoch"]))

    g = torch.Generator().manual_seed(0)
    batches = [sample(g) for _ in range(3)]
    trainer = Trainer(Tiny(), max_epochs=2, progress=False, device="cpu", callbacks=[Recorder(), object()])
    result = trainer.fit(mse, batches)
    assert result["step"] == 6 and result["epoch"] == 2
    assert events[0] == "start" and events[-1] == ("end", 2)
    assert [e[2] for e in events[1:-1]] == [0, 0, 1, 1, 1, 2]  # completed epochs


def test_target_patience_and_keep_best():
    scores = iter([0.2, 0.5, 0.4, 0.3, 0.9])

    trainer = Trainer(Tiny(), max_steps=100, monitor="acc", target=0.85, progress=False, device="cpu")
    result = trainer.fit(mse, sample, lambda m: {"acc": next(scores)})
    assert result["stop_reason"] == "target" and result["step"] == 5

    scores = iter([0.2, 0.5, 0.4, 0.3, 0.9])
    model = Tiny()
    trainer = Trainer(model, max_steps=100, monitor="acc", patience=2, keep_best=True, progress=False, device="cpu")
    snapshots = []
    result = trainer.fit(mse, sample, lambda m: (snapshots.append({k: v.clone() for k, v in m.state_dict().items()}),
                                                 {"acc": next(scores)})[1])
    assert result["stop_reason"] == "patience" and result["step"] == 4
    assert result["best_step"] == 2 and result["best_metric"] == 0.5
    for k, v in model.state_dict().items():  # the weights of the best evaluation are back
        assert torch.equal(v, snapshots[1][k])


def test_eval_at_start_is_a_row_at_step_0_that_keep_best_and_patience_honour():
    scores = iter([0.9, 0.5, 0.4, 0.3])  # the starting weights are the best
    model = Tiny()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, max_steps=100, eval_at_start=True, monitor="acc", patience=3, keep_best=True,
                      progress=False, device="cpu")
    result = trainer.fit(mse, sample, lambda m: {"acc": next(scores)})
    assert [row["step"] for row in trainer.history] == [0, 1, 2, 3] and "loss" not in trainer.history[0]
    assert result["stop_reason"] == "patience" and result["step"] == 3
    assert result["best_step"] == 0 and result["best_metric"] == 0.9
    for k, v in model.state_dict().items():  # no step beat the start: the starting weights are back
        assert torch.equal(v, start[k]), k
    with pytest.raises(ValueError, match="evaluate: eval_at_start"):
        Trainer(Tiny(), max_steps=1, eval_at_start=True, progress=False, device="cpu").fit(mse, sample)
    with pytest.raises(ValueError, match="eval_at_start"):
        Trainer(Tiny(), eval_at_start="yes")


def test_resume_with_eval_at_start_is_exact_and_evaluates_the_start_once(tmp_path):
    def run(steps, out, resume=False, seed=0):
        return run_tiny(steps, out, resume, seed, lr=1e-2, eval_at_start=True, monitor="val_loss", mode="min",
                        patience=50, keep_best=True)

    full, whole = run(40, tmp_path / "full")
    run(25, tmp_path / "split")
    resumed, trainer = run(40, tmp_path / "split", resume=True, seed=99)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert [r["step"] for r in trainer.history] == [0, 7, 14, 21, 25, 28, 35, 40]
    assert [r["val_loss"] for r in trainer.history if r["step"] != 25] == [r["val_loss"] for r in whole.history]


def test_a_callback_can_stop_training():
    class StopAt3:
        def on_step_end(self, trainer, step, logs):
            trainer.should_stop = step >= 3

    result = Trainer(Tiny(), max_steps=50, callbacks=[StopAt3()], progress=False, device="cpu").fit(mse, sample)
    assert result["step"] == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"optimizer": "adagradx"}, "optimizer"),
        ({"lr": -1.0}, "lr"),
        ({"max_steps": 0}, "max_steps"),
        ({"eval_every": 0}, "eval_every"),
        ({"mode": "up"}, "mode"),
        ({"target": 1.0}, "monitor"),
        ({"clip_grad_norm": 0.0}, "clip_grad_norm"),
        ({"device": "tpu:7"}, "device"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Trainer(Tiny(), **kwargs)


def test_fit_needs_a_stopping_rule_and_a_loss():
    with pytest.raises(ValueError, match="max_steps"):
        Trainer(Tiny(), progress=False, device="cpu").fit(mse, sample)
    with pytest.raises(TypeError, match="loss_fn"):
        Trainer(Tiny(), max_steps=1, progress=False, device="cpu").fit(lambda m, b: 1.0, sample)
    with pytest.raises(ValueError, match="monitor"):
        Trainer(Tiny(), max_steps=2, monitor="acc", progress=False, device="cpu").fit(mse, sample, lambda m: {"a": 1})


def test_checkpoint_from_another_model_is_refused(tmp_path):
    Trainer(Tiny(hidden=8), max_steps=1, progress=False, device="cpu", out_dir=tmp_path).fit(mse, sample)
    other = Trainer(Tiny(hidden=16), max_steps=2, progress=False, device="cpu", out_dir=tmp_path)
    with pytest.raises(ValueError, match="does not fit this model"):
        other.fit(mse, sample, resume=True)


def test_corrupted_checkpoint_is_a_clear_error_and_saves_are_atomic(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"a": torch.ones(2)})
    good = path.read_bytes()

    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"a": Boom()})
    assert path.read_bytes() == good  # the earlier file survives a failed save
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left behind
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupted"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os

    from gseq.train import atomic_write_text

    path = atomic_write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)


# ---------------------------------------------------------------------- nothing silently wrong, nothing lost
def test_a_nan_loss_stops_before_it_changes_the_weights():
    model = Tiny()
    calls = []

    def loss(m, batch):
        calls.append(1)
        out = mse(m, batch)
        return {**out, "loss": out["loss"] * float("nan")} if len(calls) == 4 else out

    trainer = Trainer(model, max_steps=50, progress=False, device="cpu")
    snapshot = {}

    class Snap:
        def on_step_end(self, trainer, step, logs):
            snapshot.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    trainer.callbacks.append(Snap())
    with pytest.raises(FloatingPointError, match="loss: became nan at step 4"):
        trainer.fit(loss, sample)
    assert trainer.step == 3
    for k, v in model.state_dict().items():  # the weights of step 3, untouched by the NaN step
        assert torch.equal(v, snapshot[k]), k


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 1e300}, "lr: 1e\\+300 overflows torch.float32"),
    ({"lr": float("inf")}, "lr: must be a finite"),
    ({"lr": float("nan")}, "lr: must be a finite"),
    ({"weight_decay": float("nan")}, "weight_decay: must be a finite"),
    ({"weight_decay": -1e-4}, "weight_decay: must be a finite number >= 0"),
    ({"param_groups": lambda m: [{"params": list(m.parameters()), "weight_decay": float("nan")}]},
     r"weight_decay: .*parameter group 0"),
    ({"param_groups": lambda m: [{"params": list(m.parameters()), "lr": -1.0}]}, r"lr: .*parameter group 0"),
])
def test_learning_rate_and_weight_decay_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Trainer(Tiny(), device="cpu", **kwargs)


@pytest.mark.parametrize("device", ["mps", "xpu", "meta", "cuda:7", "tpu:x"])
def test_devices_this_machine_lacks_are_refused(device):
    from gseq.train import resolve_device

    with pytest.raises(ValueError, match=f"device: '{device}'"):
        resolve_device(device)


def test_a_checkpoint_is_continued_or_replaced_only_when_asked(tmp_path):
    Trainer(Tiny(), max_steps=2, progress=False, device="cpu", out_dir=tmp_path, seed=0).fit(mse, sample)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    steps = []

    class Count:
        def on_step_end(self, trainer, step, logs):
            steps.append(step)

    fresh = Trainer(Tiny(), max_steps=2, progress=False, device="cpu", out_dir=tmp_path, seed=1, callbacks=[Count()])
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        fresh.fit(mse, sample)
    assert steps == [] and (tmp_path / "checkpoint.pt").read_bytes() == before
    again = Trainer(Tiny(), max_steps=3, progress=False, device="cpu", out_dir=tmp_path, seed=1, overwrite=True)
    again.fit(mse, sample)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["trainer"]["seed"] == 1
    again.max_steps = 5  # a trainer may go on with a checkpoint it wrote itself
    assert again.fit(mse, sample)["step"] == 5


def test_resume_with_other_settings_is_refused_naming_each(tmp_path):
    def trainer(**kwargs):
        settings = {"lr": 1e-2, "max_steps": 4, "seed": 0, "config": {"width": 8}, **kwargs}
        return Trainer(Tiny(), progress=False, device="cpu", out_dir=tmp_path, **settings)

    trainer().fit(mse, sample)
    config = (tmp_path / "config.json").read_text()
    with pytest.raises(ValueError, match=r"lr 0\.01 there, 0\.5 now; seed 0 there, 7 now; width 8 there, 9 now"):
        trainer(lr=0.5, seed=7, config={"width": 9}, max_steps=8).fit(mse, sample, resume=True)
    assert (tmp_path / "config.json").read_text() == config
    resumed = trainer(max_steps=8)  # more steps: allowed, and recorded
    assert resumed.fit(mse, sample, resume=True)["step"] == 8
    assert json.loads((tmp_path / "config.json").read_text())["trainer"]["max_steps"] == 8


def test_out_dir_is_checked_before_the_first_step(tmp_path):
    (tmp_path / "file").write_text("x")
    steps = []

    class Count:
        def on_step_end(self, trainer, step, logs):
            steps.append(step)

    for out, message in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "run", "cannot be written")):
        with pytest.raises(ValueError, match=f"out_dir: .*{message}"):
            Trainer(Tiny(), max_steps=3, progress=False, device="cpu", out_dir=out, callbacks=[Count()]).fit(mse, sample)
    assert steps == []


def test_stale_temp_files_are_removed_on_start_and_on_save(tmp_path):
    from gseq.train import remove_stale_temp_files

    ours = [tmp_path / ".checkpoint.pt.a1b2c3d4.tmp", tmp_path / ".config.json.zz_zz_zz.tmp"]
    others = [tmp_path / ".checkpoint.pt.tmp", tmp_path / ".checkpoint.pt.toolong99.tmp", tmp_path / "x.tmp",
              tmp_path / ".other.pt.a1b2c3d4.tmp", tmp_path / ".checkpoint.pt.a1b2c3d4.tmp.keep"]
    for p in ours + others:
        p.write_text("x")
    Trainer(Tiny(), max_steps=1, progress=False, device="cpu", out_dir=tmp_path).fit(mse, sample)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in others)
    ours[0].write_text("x")
    save_checkpoint(tmp_path / "checkpoint.pt", {"a": torch.ones(1)})  # a save of that file cleans up too
    assert not ours[0].exists() and all(p.exists() for p in others)
    assert remove_stale_temp_files(tmp_path / "missing", ["checkpoint.pt"]) == []


def test_a_malicious_checkpoint_is_refused_with_safe_wording(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"a": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError) as err:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(err.value)
    assert "not a gseq checkpoint and may be unsafe" in message and "system" in message
    assert "weights_only" not in message.replace("weights_only=True", "") and "likely succeed" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # torch's advice is not chained either


def test_ctrl_c_finishes_the_step_saves_and_resumes_exactly(tmp_path):
    import os
    import signal

    from gseq.train import TrainingInterrupted

    class CtrlC:
        def on_step_end(self, trainer, step, logs):
            if step == 6:
                os.kill(os.getpid(), signal.SIGINT)

    def run(out, steps, callbacks=(), resume=False):
        torch.manual_seed(0)
        model = Tiny()
        trainer = Trainer(model, optimizer="adam", lr=1e-2, max_steps=steps, eval_every=4, seed=3, progress=False,
                          device="cpu", out_dir=out, callbacks=callbacks)
        trainer.fit(mse, sample, make_eval(), resume=resume)
        return model

    full = run(tmp_path / "full", 12)
    with pytest.raises(TrainingInterrupted) as err:
        run(tmp_path / "cut", 12, [CtrlC()])
    assert isinstance(err.value, KeyboardInterrupt) and err.value.step == 6
    assert err.value.checkpoint == tmp_path / "cut" / "checkpoint.pt"
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    resumed = run(tmp_path / "cut", 12, resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
