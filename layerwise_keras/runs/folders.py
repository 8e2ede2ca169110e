"""Run folders: what a run writes, the checks before it writes, and clearing what a replaced run left.
"""

import os
import shutil

from layerwise_keras.growth.checkpoint import has_checkpoint


ARTIFACTS = ("model.keras", "saved_model", "metrics.json", "config.json")


CHECKPOINT = "checkpoint"  # growth checkpoints, deleted once the artifacts are written


# Files made later from a run's model (`layerwise-keras export` / `report`): stale once it is replaced.
DERIVED_ARTIFACTS = ("model.tflite", "model_int8.tflite", "model.onnx", "report")


def remove_stale_artifacts(output_dir):
    """With overwrite, removes what the replaced model left: its artifacts and the files derived from it."""
    for name in ARTIFACTS + DERIVED_ARTIFACTS:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def check_output_dir(output_dir, overwrite=False, resume=False):
    """Refuses an existing non-empty folder unless `overwrite` (before any training).

    Args:
        output_dir: the folder artifacts go to.
        overwrite: allow replacing this job's artifacts in it.
        resume: the folder must hold an interrupted run's checkpoint, which
            the run continues.

    Returns:
        None.

    Example:

    `run_dir`: the output folder of a finished run.

    >>> check_output_dir(os.path.join(tmp_dir, "new_run"))  # absent: fine
    >>> check_output_dir(run_dir)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: Output folder ... is not empty; refusing to overwrite it
    (pass --overwrite, or overwrite=True, to replace its artifacts).
    >>> check_output_dir(run_dir, overwrite=True)
    """
    checkpoint = os.path.join(output_dir, CHECKPOINT)
    if resume:
        if overwrite:
            raise ValueError("--resume and --overwrite contradict each other: resume keeps the run, overwrite restarts it.")
        if not has_checkpoint(checkpoint):
            raise FileNotFoundError(
                f"nothing to resume: {checkpoint} holds no checkpoint (a run writes one at every epoch end; "
                "it is deleted when the run completes)."
            )
    elif os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise FileExistsError(f"{output_dir} exists and is not a folder.")
        if has_checkpoint(checkpoint) and not overwrite:
            raise FileExistsError(
                f"{output_dir} holds an interrupted run's checkpoint; pass --resume (resume=True) to continue it, "
                "or --overwrite to start over."
            )
        if os.listdir(output_dir) and not overwrite:
            raise FileExistsError(
                f"Output folder {output_dir} is not empty; refusing to overwrite it "
                "(pass --overwrite, or overwrite=True, to replace its artifacts)."
            )
    # A missing folder is created with its missing parents: the nearest existing one must be writable.
    existing = os.path.abspath(output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise FileExistsError(f"Output folder {output_dir} cannot be created: {existing} is a file.")
    if not os.access(existing, os.W_OK):
        where = "" if existing == os.path.abspath(output_dir) else f" ({existing}, where it would be created, is not)"
        raise PermissionError(f"Output folder {output_dir} is not writable{where}.")
