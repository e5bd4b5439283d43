"""The shared training loop, its checkpoints, atomic file writing, and training across processes."""

from .checkpoint import CHECKPOINT_FORMAT, RESUMABLE_SETTINGS, check_model_state
from .distributed import Mean, RankLostError, launched_env, rank_and_world_size, rank_seed, shard_indices
from ..io import (atomic_write_bytes, atomic_write_text, check_writable_dir, load_checkpoint, remove_stale_temp_files,
                  save_checkpoint, write_csv, write_json)
from .runtime import apply_threads, move_to, resolve_device, seed_everything, training_device
from .callbacks import Best, Patience, Target, stop_on_sigint
from .run_folder import RUN_FILES, RunFolder, run_kind
from .strategy import DataParallel, SingleProcess, choose_strategy
from .trainer import Trainer, TrainingInterrupted

__all__ = [
    "Trainer",
    "TrainingInterrupted",
    "Best",
    "Target",
    "Patience",
    "stop_on_sigint",
    "RunFolder",
    "RUN_FILES",
    "run_kind",
    "SingleProcess",
    "DataParallel",
    "choose_strategy",
    "RESUMABLE_SETTINGS",
    "seed_everything",
    "apply_threads",
    "resolve_device",
    "training_device",
    "move_to",
    "check_model_state",
    "CHECKPOINT_FORMAT",
    "Mean",
    "RankLostError",
    "launched_env",
    "rank_and_world_size",
    "rank_seed",
    "shard_indices",
    "atomic_write_bytes",
    "atomic_write_text",
    "write_json",
    "write_csv",
    "save_checkpoint",
    "load_checkpoint",
    "remove_stale_temp_files",
    "check_writable_dir",
]
