"""Retraining: data, simulated interactive sessions, SAM's losses and the training loop."""

from .data import AugmentConfig, CropDataset, Sample, folder_samples, load_samples
from .loop import Progress, TrainConfig, train
from .simulate import SessionConfig

__all__ = [
    "AugmentConfig",
    "CropDataset",
    "Progress",
    "Sample",
    "SessionConfig",
    "TrainConfig",
    "folder_samples",
    "load_samples",
    "train",
]
