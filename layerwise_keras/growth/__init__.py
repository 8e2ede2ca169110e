"""Growth: stages, the one model builder, the `LayerwiseTrainer` callback, cached growth, checkpoints.

- `Stage` (`stage`), `ClusterAssignment`, `CodeGate` (`layers`),
  `LayerwiseSequential` (`sequential`); the table of stage kinds (`kinds`)
  and the assignments' code functions (`codes`).
- `input_model`, `grown_model`, `end_to_end_model`, the stage-layer registry
  (`builder`).
- `LayerwiseTrainer` (`trainer`), `assignments` (`inspect`).
- `grow_cached` (`cached`, TensorFlow-only), `GrowthCheckpoint`,
  `read_checkpoint` (`checkpoint`).

The names below load on first access, as the top level does, so that importing
`growth.layers` or `growth.sequential` (what `registration` does) imports
nothing else of the package but the table of kinds and the code functions.
"""

from layerwise_keras.lazy import lazy_attributes

# Public names -> the module that defines them.
_EXPORTS = {
    "ASSIGNMENTS": "kinds",
    "ClusterAssignment": "layers",
    "CodeGate": "layers",
    "LayerwiseSequential": "sequential",
    "LayerwiseTrainer": "trainer",
    "Stage": "stage",
    "assignments": "inspect",
    "end_to_end_model": "builder",
    "grown_model": "builder",
    "input_model": "builder",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
