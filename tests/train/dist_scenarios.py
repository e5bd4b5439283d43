"""Distributed Trainer scenarios, run as the processes torchrun would start (see test_distributed.py).

Usage: ``python dist_scenarios.py SCENARIO OUT_DIR``, with ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` set (or none of them, for the single-process reference). Every
process writes ``OUT_DIR/result_<rank>.json``; the test compares them.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

import gseq.train.trainer as trainer_module
from gseq.train import Mean, RankLostError, Trainer, launched_env

B, STEPS, FEATURES = 4, 5, 3  # per-rank batch, steps, input features


def global_batches(steps: int = STEPS, world: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same global batches (``world * B`` rows each) in every process."""
    g = torch.Generator().manual_seed(123)
    return [(torch.randn(world * B, FEATURES, generator=g), torch.randn(world * B, 1, generator=g))
            for _ in range(steps)]


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 8), nn.Tanh(), nn.Linear(8, 1))


def mse(m, batch):
    x, y = batch
    return ((m(x) - y) ** 2).mean()


def flat(m: nn.Module) -> list[float]:
    return torch.cat([p.detach().flatten() for p in m.parameters()]).tolist()


def exactness(out: Path, rank: int, world: int) -> dict:
    """Per-rank halves of the global batches through DDP vs whole global batches in one process; metrics
    reduced exactly; only rank 0 writes."""
    batches = global_batches()
    if world == 1:
        data = batches  # one process, global batches of 2B
    else:
        calls = iter(range(STEPS))
        data = lambda g: [t[rank * B:(rank + 1) * B] for t in batches[next(calls)]]  # noqa: E731
    writers = []
    for name in ("save_checkpoint", "write_csv", "write_json"):  # record who writes
        real = getattr(trainer_module, name)
        setattr(trainer_module, name, lambda *a, _real=real, _name=name, **k: (writers.append(_name), _real(*a, **k))[1])

    def evaluate(m):
        # rank r holds r + 1 samples, all correct on rank 0 and none on rank 1: the exact mean is 1/3,
        # the mean of the ranks' means 1/2
        return {"exact": Mean(1.0 if rank == 0 else 0.0, rank + 1), "plain": float(rank)}

    m = model()
    trainer = Trainer(m, optimizer="sgd", lr=0.1, optimizer_kwargs={"momentum": 0.9}, max_steps=STEPS, seed=0,
                      device="cpu", progress=False, out_dir=out / "run" if world > 1 else None, eval_every=STEPS)
    trainer.fit(mse, data, evaluate)
    ckpt_keys = []
    if world > 1 and rank == 0:
        ckpt = torch.load(out / "run" / "checkpoint.pt", weights_only=True)
        fresh = model()
        fresh.load_state_dict(ckpt["model"])  # no "module." prefix: loads into a plain module
        ckpt_keys = sorted(ckpt["model"])
        assert flat(fresh) == flat(m)
    return {"weights": flat(m), "eval": trainer.last_eval, "writers": sorted(set(writers)), "ckpt_keys": ckpt_keys,
            "history": trainer.history}


def sample_batch(g: torch.Generator):
    x = torch.randn(B, FEATURES, generator=g)
    return x, x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(B, 1, generator=g)


def resume(out: Path, rank: int, world: int) -> dict:
    """6 steps in one go vs 3 steps, a checkpoint, then 3 more in a new Trainer: the same weights."""
    straight = Trainer(model(), lr=0.05, max_steps=6, seed=1, device="cpu", progress=False)
    straight.fit(mse, sample_batch)
    first = Trainer(model(), lr=0.05, max_steps=3, seed=1, device="cpu", progress=False, out_dir=out / "resume")
    first.fit(mse, sample_batch)
    second = Trainer(model(), lr=0.05, max_steps=6, seed=1, device="cpu", progress=False, out_dir=out / "resume")
    second.fit(mse, sample_batch, resume=True)
    return {"straight": flat(straight.model), "resumed": flat(second.model), "step": second.step}


def killed(out: Path, rank: int, world: int, dies: int = 1) -> dict:
    """Rank ``dies`` (1) dies at step 3; the other must stop with a message naming it, the checkpoint loadable."""

    class Die:
        def on_step_end(self, trainer, step, logs):
            if rank == dies and step == 3:
                os._exit(3)

    trainer = Trainer(model(), lr=0.05, max_steps=50, seed=1, device="cpu", progress=False, out_dir=out / "killed",
                      checkpoint_every=1, callbacks=[Die()], dist_timeout=20)
    try:
        trainer.fit(mse, sample_batch)
    except RankLostError as err:
        return {"error": str(err)}
    return {"error": None}


def reference_world_size_change(out: Path, rank: int, world: int) -> dict:
    """A single process refuses to resume the 2-process checkpoint of ``resume``."""
    trainer = Trainer(model(), lr=0.05, max_steps=6, seed=1, device="cpu", progress=False, out_dir=out / "resume")
    try:
        trainer.fit(mse, sample_batch, resume=True)
    except ValueError as err:
        return {"error": str(err)}
    return {"error": None}


def interrupted(out: Path, rank: int, world: int) -> dict:
    """Ctrl-C on rank 0 at an evaluating step (4), resume, Ctrl-C on rank 1 at a step between evaluations (5),
    resume: the history, best evaluation and weights of the run that was never interrupted, on a sampler
    and on a list of batches walked by epochs."""
    from gseq.train import TrainingInterrupted

    class CtrlC:  # what the SIGINT handler does, on one rank only
        def __init__(self, at, on_rank):
            self.at, self.on_rank = at, on_rank

        def on_step_end(self, trainer, step, logs):
            if step == self.at and rank == self.on_rank:
                trainer.interrupted = True

    batches = [sample_batch(torch.Generator().manual_seed(i)) for i in range(6)]

    def evaluate(m):
        return {"val": Mean(float(flat(m)[rank]), 1.0)}

    def run(folder, data, stop=None, resume=False):
        trainer = Trainer(model(), lr=0.05, seed=1, device="cpu", progress=False, out_dir=out / folder, eval_every=2,
                          checkpoint_every=3, monitor="val", keep_best=True, callbacks=[stop] if stop else [],
                          **({"max_steps": 8} if callable(data) else {"max_epochs": 3}))
        try:
            result = trainer.fit(mse, data, evaluate, resume=resume)
        except TrainingInterrupted as err:
            return {"interrupted": err.step}
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in trainer.history]
        return {"rows": rows, "best": result["best_step"], "weights": flat(trainer.model)}

    results = {}
    for name, data in (("sampler", sample_batch), ("list", batches)):
        straight = run(f"{name}-straight", data)
        stops = [run(f"{name}-cut", data, CtrlC(4, 0)), run(f"{name}-cut", data, CtrlC(5, 1), resume=True)]
        results[name] = {"straight": straight, "stops": stops, "resumed": run(f"{name}-cut", data, resume=True)}
    return results


FORECAST = dict(hidden=4, epochs=3, patience=None, lr=0.02, train=0.8, val=0.1, window=3, baselines=False,
                progress=False, device="cpu", threads=1)  # 26 training snapshots: 9 windows, 4 per rank
FORECAST_RUNS = {"window3": {}, "window1": {"window": 1, "epochs": 1}}  # window 1: rank 0's first window is one step


def forecast_reference(settings: dict, world: int) -> list[dict]:
    """train_forecaster's training in plain torch, one process: the windows cut into ``world`` contiguous blocks,
    each step Adam on the mean of the blocks' k-th window losses, the state carried along each block and, at a
    block's start after the first snapshot, built by the current weights over the earlier snapshots; the model
    started from the AR model of the fit snapshots (``ar_init``); before training and per epoch the validation
    MSE, the weights and the test MSE."""
    from gseq.config import TemporalConfig
    from gseq.data import split_by_time
    from gseq.models import LinearAR
    from gseq.tasks import forecasting as task

    cfg = TemporalConfig(**settings)
    signal = task.load_signal(cfg)
    fit, val, _ = split_by_time(signal, cfg.train, cfg.val)
    n_fit, n_train = len(fit), len(fit) + len(val)
    torch.manual_seed(cfg.seed)
    m = task._model(cfg, signal)  # the task's model, built as the task builds it
    if cfg.ar_init:
        m.start_from(LinearAR.fit(signal.x[:n_fit], signal.y[:n_fit]))
    opt = torch.optim.Adam(m.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    graphs = m.graphs(signal.edge_index, signal.edge_weight, signal.num_nodes)
    x, y = signal.x, signal.y
    spans = [(lo, min(lo + cfg.window, n_fit)) for lo in range(0, n_fit, cfg.window)]
    per = len(spans) // world
    blocks = [spans[r * per:(r + 1) * per] for r in range(world)]

    def evaluation() -> dict:
        with torch.no_grad():
            pred = m(x, graphs)[0]
        return {"val_mse": float(((pred[n_fit:n_train] - y[n_fit:n_train]) ** 2).mean()), "weights": flat(m),
                "test_mse": float(((pred[n_train:] - y[n_train:]) ** 2).mean())}

    epochs = [evaluation()]  # the task's step-0 row
    for _ in range(cfg.epochs):
        states = [None] * world
        for k in range(per):
            losses = []
            for r, block in enumerate(blocks):
                lo, hi = block[k]
                if k == 0 and lo > 0:
                    with torch.no_grad():
                        states[r] = m(x[:lo], graphs)[1]
                pred, state = m(x[lo:hi], graphs, states[r])
                states[r] = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
                losses.append(((pred - y[lo:hi]) ** 2).mean())
            opt.zero_grad()
            (sum(losses) / world).backward()
            opt.step()
        epochs.append(evaluation())
    return epochs


def forecasting(out: Path, rank: int, world: int) -> dict:
    """train_forecaster on the signal in ``out/signal.json``: in one process, the plain-torch reference of 1 and 2
    blocks; in two, the task with its windows sharded by rank, and the same run stopped by Ctrl-C on rank 1 inside
    an epoch (step 5), then resumed."""
    from gseq.tasks.forecasting import train_forecaster
    from gseq.train import TrainingInterrupted

    settings = {**FORECAST, "file": str(out / "signal.json")}
    if world == 1:
        return {name: {str(w): forecast_reference({**settings, **extra}, w) for w in (1, 2)}
                for name, extra in FORECAST_RUNS.items()}

    def run(folder, extra, stop_at=None, resume=False):
        init = Trainer.__init__

        class CtrlC:  # what the SIGINT handler does, on rank 1 only
            def on_step_end(self, trainer, step, logs):
                if step == stop_at and rank == 1:
                    trainer.interrupted = True

        def patched(self, *args, callbacks=(), **kwargs):
            init(self, *args, callbacks=[*callbacks, CtrlC()], **kwargs)

        Trainer.__init__ = patched
        try:
            done = train_forecaster(**{**settings, **extra}, out_dir=str(out / folder), resume=resume)
        except TrainingInterrupted as err:
            return {"interrupted": err.step}
        finally:
            Trainer.__init__ = init
        rows = None
        if rank == 0:  # it writes the metrics
            with open(out / folder / "metrics.csv", newline="") as f:
                rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
        return {"weights": flat(done["model"]), "test_mse": done["metrics"]["test_mse"], "rows": rows,
                "best_step": done["result"]["best_step"]}

    results = {name: run(name, extra) for name, extra in FORECAST_RUNS.items()}
    results["cut"] = run("cut", {}, stop_at=5)
    results["resumed"] = run("cut", {}, resume=True)
    return results


SCENARIOS = {"exactness": exactness, "resume": resume, "killed": killed,
             "killed_main": lambda out, rank, world: killed(out, rank, world, dies=0),
             "world_size_change": reference_world_size_change, "interrupted": interrupted, "forecasting": forecasting}

if __name__ == "__main__":
    torch.set_num_threads(1)
    name, out = sys.argv[1], Path(sys.argv[2])
    env = launched_env()
    rank, world = (env.rank, env.world_size) if env else (0, 1)
    result = SCENARIOS[name](out, rank, world)
    (out / f"{name}_{world}_{rank}.json").write_text(json.dumps(result))
