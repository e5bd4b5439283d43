"""The shared training loop, its checkpoints and atomic file writing."""

from ..io import (atomic_write_bytes, atomic_write_text, check_writable_dir, load_checkpoint, remove_stale_temp_files,
                  save_checkpoint, write_csv, write_json)
from .trainer import (CHECKPOINT_FORMAT, RESUMABLE_SETTINGS, Trainer, TrainingInterrupted, check_model_state, move_to,
                      resolve_device, seed_everything)

__all__ = [
    "Trainer",
    "TrainingInterrupted",
    "RESUMABLE_SETTINGS",
    "seed_everything",
    "resolve_device",
    "move_to",
    "check_model_state",
    "CHECKPOINT_FORMAT",
    "atomic_write_bytes",
    "atomic_write_text",
    "write_json",
    "write_csv",
    "save_checkpoint",
    "load_checkpoint",
    "remove_stale_temp_files",
    "check_writable_dir",
]
