"""Data for ust: datasets, the one-class protocol, teacher pretraining patches.

Introduced in the book's chapter *Introduction* (datasets, one-class
protocol) and *Teacher losses* (pretraining patches).
"""

from .patches import PatchSampler
from .datasets import (
    DATASET_NAMES,
    DataUnavailableError,
    DatasetSplits,
    ImageArrays,
    OneClassData,
    data_roots,
    load_dataset,
    load_mnist_or_digits,
    one_class_split,
    preprocess,
    resize_images,
    stratified_subset,
)
from .mvtec import MVTEC_URL, MVTecData, load_mvtec, mvtec_categories
from .synthetic import (GLOBAL_KINDS, SYNTHETIC_KINDS, add_synthetic_anomalies, global_anomalies,
                        rotate_quarter_turns, splice_halves, swap_halves)

__all__ = [
    "PatchSampler",
    "DATASET_NAMES", "DataUnavailableError", "data_roots", "ImageArrays", "DatasetSplits", "load_dataset",
    "load_mnist_or_digits", "OneClassData", "one_class_split", "preprocess", "resize_images",
    "stratified_subset",
    "SYNTHETIC_KINDS", "GLOBAL_KINDS", "add_synthetic_anomalies", "rotate_quarter_turns", "splice_halves",
    "swap_halves", "global_anomalies",
    "MVTEC_URL", "MVTecData", "load_mvtec", "mvtec_categories",
]
