"""The pieces of gseq.train.distributed that need no second process."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

from gseq.checks import MAX_SEED, random_seed
from gseq.train import seed_everything
from gseq.train.distributed import Mean, launched_env, rank_device, rank_seed, shard_indices


def test_launched_env_alone_and_under_torchrun():
    assert launched_env({}) is None
    assert launched_env({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}) is None  # one process: no group
    env = launched_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (3, 4, 1, 2)


@pytest.mark.parametrize("environ, match", [
    ({"WORLD_SIZE": "2", "RANK": "0"}, "LOCAL_RANK not"),
    ({"WORLD_SIZE": "two", "RANK": "0", "LOCAL_RANK": "0"}, "WORLD_SIZE='two'"),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, "do not fit"),
])
def test_launched_env_refuses_a_malformed_environment(environ, match):
    with pytest.raises(ValueError, match=match):
        launched_env(environ)


@pytest.mark.parametrize("n, world, shuffle", [(10, 2, True), (10, 3, True), (7, 4, False), (3, 5, True), (1, 2, False)])
@pytest.mark.parametrize("epoch", [0, 3])
def test_shard_indices_is_distributed_samplers_rule(n, world, shuffle, epoch):
    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=11)
        sampler.set_epoch(epoch)
        assert shard_indices(n, rank, world, epoch=epoch, seed=11, shuffle=shuffle) == list(sampler)


def test_shards_cover_every_item_and_have_equal_length():
    shards = [shard_indices(11, r, 3, epoch=1, seed=0) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    assert set().union(*shards) == set(range(11))
    assert shard_indices(11, 0, 3, epoch=1) != shard_indices(11, 0, 3, epoch=2)  # reshuffled per epoch


def test_rank_seed():
    assert rank_seed(5, 0) == 5  # rank 0 draws what a single process draws
    seeds = {rank_seed(5, r) for r in range(8)}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)
    assert rank_seed(5, 3) == rank_seed(5, 3)
    for rank in range(1, 8):  # a derived seed is a seed gseq accepts (the Trainer seeds each rank with one)
        seed_everything(random_seed("seed", rank_seed(MAX_SEED, rank)))


def test_mean_is_its_float_and_keeps_sum_and_count():
    m = Mean(torch.tensor(3.0), 4)
    assert m == 0.75 and isinstance(m, float) and f"{m:.2f}" == "0.75"
    assert (m.total, m.count) == (3.0, 4.0)
    assert float(Mean(0, 0)) != float(Mean(0, 0))  # NaN when empty


ENV2 = launched_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})


def test_rank_device_is_the_cpu_or_the_local_rank_gpu(monkeypatch):
    assert rank_device("cpu", ENV2) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert rank_device("cuda", ENV2) == torch.device("cuda", 1)
    assert rank_device("auto", ENV2) == torch.device("cuda", 1)


@pytest.mark.parametrize("device, gpus, match", [
    ("cuda", 1, "needs one GPU per process, but this machine runs 2 processes and sees 1 GPU"),
    ("cuda", 0, "CUDA is not available"),
    ("cuda:1", 4, "names one GPU"),
    ("mps", 0, "not supported for distributed"),
])
def test_rank_device_refuses_what_cannot_serve_every_rank(monkeypatch, device, gpus, match):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(ValueError, match=match):
        rank_device(device, ENV2)
