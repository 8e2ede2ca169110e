"""Data: input checks, the paper's generative model, real datasets from local files, batches and augmentation.

- `HierarchicalModel`: the generative model; `hierarchical_digits`: its seven-segment
  digits instance (NumPy).
- `check_images`, `check_labels`, `check_splits`: the input checks.
- `ArrayBatches`, `augment_batch`: NumPy batches for `fit` on any backend.
- `from_arrays`, `load`, `hierarchical_dataset`, `hierarchical_digits_dataset`:
  `tf.data` pipelines (TensorFlow is imported when they are called).
- `load_arrays`, `normalize_images`: real datasets from local files.
- `load_splits`: the train/val/test splits of a configuration's dataset.
- `sample_grid`, `save_sample_grid`: one row of samples per label.
"""

from layerwise_keras.datasets.augment import augment_batch
from layerwise_keras.datasets.batches import ArrayBatches, image_batches
from layerwise_keras.datasets.checks import check_images, check_labels, check_splits
from layerwise_keras.datasets.digits import DIGITS_LEVEL_NAMES, hierarchical_digits
from layerwise_keras.datasets.generative import HierarchicalModel
from layerwise_keras.datasets.grids import sample_grid, save_sample_grid
from layerwise_keras.datasets.local import DataError
from layerwise_keras.datasets.real import DATA_ENV, NORMALIZATIONS, load_arrays, normalize_images
from layerwise_keras.datasets.splits import REAL_DATASETS, load_splits
from layerwise_keras.datasets.tfdata import from_arrays, hierarchical_dataset, hierarchical_digits_dataset, load

__all__ = [
    "DATA_ENV",
    "DIGITS_LEVEL_NAMES",
    "NORMALIZATIONS",
    "REAL_DATASETS",
    "ArrayBatches",
    "DataError",
    "HierarchicalModel",
    "augment_batch",
    "check_images",
    "check_labels",
    "check_splits",
    "from_arrays",
    "hierarchical_dataset",
    "hierarchical_digits",
    "hierarchical_digits_dataset",
    "image_batches",
    "load",
    "load_arrays",
    "load_splits",
    "normalize_images",
    "sample_grid",
    "save_sample_grid",
]
