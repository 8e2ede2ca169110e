"""Runs: configurations, the main job (grow, evaluate, export), run folders, exports and reports of a run.

- `load_config`, `validate_config`, `smoke_config`, `bundled_configs` (`config`).
- `grow`, `end_to_end`, `run`, `run_baseline` (`pipeline`).
- `check_output_dir` (`folders`), `machine_info` (`machine`).
- `export_run`, `artifact_path` (`exporting`); `write_report`, `report_paths` (`report`).
"""

from layerwise_keras.runs.config import bundled_configs, load_config, smoke_config, validate_config
from layerwise_keras.runs.exporting import artifact_path, export_run
from layerwise_keras.runs.folders import check_output_dir
from layerwise_keras.runs.machine import machine_info
from layerwise_keras.runs.pipeline import end_to_end, grow, run, run_baseline
from layerwise_keras.runs.report import report_paths, write_report

__all__ = [
    "artifact_path",
    "bundled_configs",
    "check_output_dir",
    "end_to_end",
    "export_run",
    "grow",
    "load_config",
    "machine_info",
    "report_paths",
    "run",
    "run_baseline",
    "smoke_config",
    "validate_config",
    "write_report",
]
