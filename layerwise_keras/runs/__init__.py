"""Runs: configurations, the main job (grow, evaluate, export), run folders, exports and reports of a run.

- `load_config`, `validate_config`, `bundled_configs` (`config`); `smoke_config`,
  `uncached_config` (`variants`).
- `grow`, `end_to_end`, `run`, `run_baseline` (`pipeline`).
- `check_output_dir` (`folders`), `machine_info` (`machine`).
- `export_run`, `artifact_path` (`exporting`); `write_report`, `report_paths` (`report`).

The names load on first access, as the top level does, so that the command
line reads and checks a configuration (`runs.config`) without importing
Keras or TensorFlow.
"""

from layerwise_keras.lazy import lazy_attributes

# Public names -> the module that defines them.
_EXPORTS = {
    "artifact_path": "exporting",
    "bundled_configs": "config",
    "check_output_dir": "folders",
    "end_to_end": "pipeline",
    "export_run": "exporting",
    "grow": "pipeline",
    "load_config": "config",
    "machine_info": "machine",
    "report_paths": "report",
    "run": "pipeline",
    "run_baseline": "pipeline",
    "smoke_config": "variants",
    "uncached_config": "variants",
    "validate_config": "config",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
