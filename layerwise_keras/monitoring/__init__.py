"""Watching a growth: TensorBoard summaries, receptive fields and patches, pictures.

- `StageSummaries` (`tensorboard`, TensorFlow-only; import it from
  `layerwise_keras.monitoring.tensorboard`).
- `receptive_field`, `stage_patches`, `centroid_patches`, `tile_patches`,
  `clustered_stages` (`patches`).
- `plot_stage_accuracy`, `cluster_atlas`, `plot_cluster_atlas`,
  `confusion_matrix`, `plot_confusion_matrix` (`plots`, matplotlib).
"""

from layerwise_keras.monitoring.patches import (
    ReceptiveField,
    centroid_patches,
    receptive_field,
    stage_patches,
    tile_patches,
)
from layerwise_keras.monitoring.plots import (
    cluster_atlas,
    confusion_matrix,
    plot_cluster_atlas,
    plot_confusion_matrix,
    plot_stage_accuracy,
)

__all__ = [
    "ReceptiveField",
    "centroid_patches",
    "cluster_atlas",
    "confusion_matrix",
    "plot_cluster_atlas",
    "plot_confusion_matrix",
    "plot_stage_accuracy",
    "receptive_field",
    "stage_patches",
    "tile_patches",
]
