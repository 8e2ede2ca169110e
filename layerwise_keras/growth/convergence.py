"""When a `Stage(patience=...)` has converged: Keras' own monitor semantics, per stage.

A converging stage watches `Stage.monitor` (`"auto"`: `val_loss` when `fit`
validates, else `loss`) and ends once it has not improved by more than
`min_delta` for `patience` epochs, keeping its best epoch's weights. Whether
larger or smaller is better comes from `Stage.mode` (`"min"`, `"max"`), or,
with `mode="auto"`, from the metric exactly as Keras' `EarlyStopping` decides
it (`compat.monitor_direction`): losses are minimised, a metric with a
direction (accuracy, AUC, ...) follows it, and a quantity Keras cannot tell
is an error asking for `mode`.
"""

import keras

from layerwise_keras import compat


def monitor_key(stage, logs):
    """Returns the epoch-log key the stage watches, or raises naming the keys there are.

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> monitor_key(Stage(8, patience=2), {"loss": 1.0, "val_loss": 1.2})
    'val_loss'
    """
    key = stage.monitor
    if key == "auto":
        key = "val_loss" if "val_loss" in logs else "loss"
    if key not in logs:
        raise ValueError(
            f"LayerwiseTrainer: Stage(monitor={stage.monitor!r}) is not in the epoch logs "
            f"(they hold {sorted(k for k in logs if k != 'stage')})."
        )
    return key


def direction(stage, key, model):
    """Returns +1 when larger values of `key` are better, -1 when smaller are (`Stage.mode`, or Keras' rule).

    Raises:
        ValueError: with `mode="auto"` and a quantity whose direction Keras
            cannot tell (it names the stage and asks for `mode`).
    """
    if stage.mode == "max":
        return 1
    if stage.mode == "min":
        return -1
    try:
        return compat.monitor_direction(model, key)
    except ValueError as err:
        raise ValueError(
            f"LayerwiseTrainer: cannot tell whether Stage(monitor={stage.monitor!r}) ({key!r}) should be "
            "maximised or minimised; give the stage mode='max' or mode='min'."
        ) from err


class Convergence:
    """Tracks one converging stage: its best monitored value, best epoch and logs, and epochs without gain.

    Args:
        progress: the trainer's progress dict (keys `best`, `best_epoch`,
            `best_logs`, `wait`), updated in place so checkpoints save it.

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> stage = Stage(8, patience=2, mode="min")  # with mode="auto", `model` tells the direction
    >>> tracker = Convergence({"best": None, "best_epoch": None, "best_logs": None, "wait": 0})
    >>> [tracker.update(stage, epoch, {"loss": loss}, model=None)
    ...  for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.85])]  # (converged, improved) per epoch
    [(False, True), (False, True), (False, False), (True, False)]
    >>> tracker.progress["best"], tracker.progress["best_epoch"]
    (0.8, 1)
    """

    def __init__(self, progress):
        self.progress = progress

    def update(self, stage, epoch, logs, model):
        """Takes one epoch's logs; returns `(converged, improved)`.

        `improved`: this epoch is the stage's best so far (the caller keeps
        its weights); `converged`: `patience` epochs have passed without one.
        """
        progress = self.progress
        key = monitor_key(stage, logs)
        value, sign = float(logs[key]), direction(stage, key, model)
        best = progress["best"]
        improved = best is None or sign * value > sign * best + stage.min_delta
        if improved:
            progress.update(best=value, best_epoch=int(epoch), wait=0,
                            best_logs={k: float(v) for k, v in logs.items()})
        else:
            progress["wait"] += 1
        return progress["wait"] >= stage.patience, improved


def trainable_values(model):
    """Copies of the model's trainable weights (NumPy), to restore a stage's best epoch."""
    return [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
