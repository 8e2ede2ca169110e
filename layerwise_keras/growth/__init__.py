"""Growth: stages, the one model builder, the `LayerwiseTrainer` callback, cached growth, checkpoints.

- `Stage` (`stage`), `ClusterAssignment`, `CodeGate` (`layers`).
- `input_model`, `grown_model`, `end_to_end_model`, the stage-layer registry
  (`builder`).
- `LayerwiseTrainer` (`trainer`), `assignments` (`inspect`).
- `grow_cached` (`cached`, TensorFlow-only), `GrowthCheckpoint`,
  `read_checkpoint` (`checkpoint`).
"""

from layerwise_keras.growth.builder import end_to_end_model, grown_model, input_model
from layerwise_keras.growth.inspect import assignments
from layerwise_keras.growth.layers import ASSIGNMENTS, ClusterAssignment, CodeGate
from layerwise_keras.growth.stage import Stage
from layerwise_keras.growth.trainer import LayerwiseTrainer

__all__ = [
    "ASSIGNMENTS",
    "ClusterAssignment",
    "CodeGate",
    "LayerwiseTrainer",
    "Stage",
    "assignments",
    "end_to_end_model",
    "grown_model",
    "input_model",
]
