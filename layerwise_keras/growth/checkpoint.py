"""Checkpoints of a growth, so that a killed run resumes where it stopped.

`GrowthCheckpoint` is a Keras callback that runs after the `LayerwiseTrainer`
at every epoch end and saves, into `folder/epoch_NNNN/`:

* `model.keras`: the growing `Sequential` as it is then (frozen stages,
  cluster assignments, the stage in training, its optimizer state; at a stage
  end, the next stage already added with a fresh optimizer);
* `state.json`: epochs done, the trainer's `stage_results`, the per-epoch
  history so far and the run's configuration.

A checkpoint is written whole into `epoch_NNNN.partial/`, renamed to
`epoch_NNNN/`, and only then named in `folder/LATEST` (replaced atomically);
older checkpoints are deleted after that. A kill at any moment therefore
leaves `LATEST` naming a complete checkpoint (or no `LATEST` at all, before
the first epoch ends). `read_checkpoint` loads the latest one and turns
missing, truncated or inconsistent files into a `ValueError` that names the
file.

Example (`x`, `y`: 128 images 27x27x1 and their labels, 10 classes):

>>> import os, keras
>>> from layerwise_keras import LayerwiseTrainer, Stage, input_model
>>> trainer = LayerwiseTrainer([Stage(8, 3, clusters=8), Stage(8, 3)], 10, kmeans_data=x, verbose=0)
>>> model = input_model(x.shape[1:])
>>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> folder = os.path.join(tmp_dir, "checkpoint")
>>> ckpt = GrowthCheckpoint(folder, trainer, config={"name": "the run's configuration"})
>>> history = model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer, ckpt], verbose=0)
>>> sorted(os.listdir(folder))
['LATEST', 'epoch_0002']
>>> model, state = read_checkpoint(folder)
>>> state["epochs_done"], len(state["stage_results"]), state["config"]
(2, 2, {'name': "the run's configuration"})
>>> [layer.name for layer in model.layers]
['stage1_conv', 'stage1_assign', 'stage2_conv', 'stage2_readout_flatten', 'stage2_readout']

Resuming (what `runs.run(..., resume=True)` does): a fresh trainer restored
from the checkpoint's state, and `fit` from the epochs done:

>>> trainer = LayerwiseTrainer([Stage(8, 3, clusters=8), Stage(8, 3)], 10, kmeans_data=x, verbose=0)
>>> trainer = trainer.restore(state["stage_results"], state["epochs_done"], state["trainer"],
...                           state["best_weights"])
>>> trainer.finished
True
"""

import json
import os
import shutil

import keras
import numpy as np

from layerwise_keras.saving import load_keras_file

LATEST = "LATEST"
MODEL_FILE = "model.keras"
STATE_FILE = "state.json"
BEST_WEIGHTS_FILE = "best_weights.npz"
OPTIMIZER_FILE = "optimizer.npz"


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # NumPy / backend scalars
        return value.item()
    return value


class GrowthCheckpoint(keras.callbacks.Callback):
    """Saves the growing model and the trainer's progress at epoch ends (every epoch by default).

    Put it after the `LayerwiseTrainer` in `callbacks` (the trainer grows the
    model at a stage end; the checkpoint must see the grown model).

    Args:
        folder: the checkpoint folder (created if missing).
        trainer: the `LayerwiseTrainer` of this growth.
        config: a JSON-able dict stored with each checkpoint (the run's
            configuration; `resume` compares it with the one given).
        history: per-epoch logs of the epochs before this `fit` (a resumed
            run passes the checkpoint's), so `self.history` covers them all.
        every: int >= 1, save after every `every`-th epoch (counted from the
            growth's first epoch), and always after each stage's last epoch
            and the growth's last epoch. A resumed run repeats the epochs
            after the last save.

    Returns:
        A callback; `self.history` is the list of per-epoch logs.

    Example (`x`: 128 images 27x27x1; the module's example runs a growth
    with `callbacks=[trainer, GrowthCheckpoint(...)]`):

    >>> import os
    >>> from layerwise_keras import LayerwiseTrainer, Stage
    >>> trainer = LayerwiseTrainer([Stage(8, 3, clusters=8, epochs=3), Stage(8, 3, epochs=3)], 10, x,
    ...                            verbose=0)
    >>> ckpt = GrowthCheckpoint(os.path.join(tmp_dir, "ckpt"), trainer, config={}, every=2)
    >>> [epoch for epoch in range(trainer.total_epochs) if ckpt.due(epoch)]  # 0-based epochs
    [1, 2, 3, 5]
    """

    def __init__(self, folder, trainer, config, history=(), every=1):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"GrowthCheckpoint: every must be an integer >= 1, got {every!r}.")
        self.folder = os.fspath(folder)
        self.trainer = trainer
        self.config = config
        self.history = [dict(h) for h in history]
        self.every = int(every)

    def due(self, epoch):
        """Whether the checkpoint is written after 0-based `epoch`.

        Args:
            epoch: 0-based epoch index of the growth.

        Returns:
            True after every `every`-th epoch, each stage's last epoch and the
            growth's last epoch.

        Example:

        >>> from layerwise_keras import LayerwiseTrainer, Stage
        >>> trainer = LayerwiseTrainer([Stage(8, 3, clusters=8, epochs=5), Stage(8, 3, epochs=5)], 10, x,
        ...                            verbose=0)
        >>> ckpt = GrowthCheckpoint(tmp_dir, trainer, config={}, every=4)
        >>> ckpt.due(3), ckpt.due(4), ckpt.due(5)  # the 4th epoch, stage 1's last, neither
        (True, True, False)
        """
        planned_ends = {int(e) - 1 for e in np.cumsum(self.trainer.stage_budgets())}
        stage_ends = planned_ends | set(self.trainer.ended_epochs())
        return ((epoch + 1) % self.every == 0 or epoch in stage_ends or epoch + 1 == self.trainer.total_epochs
                or self.trainer.finished)

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({k: _json_safe(v) for k, v in (logs or {}).items()})
        if self.due(epoch):
            self._save(epoch)

    def _save(self, epoch):
        state = {
            "epochs_done": epoch + 1,
            "stage_results": self.trainer.stage_results,
            "trainer": self.trainer.progress(),
            "history": self.history,
            "config": self.config,
        }
        best = self.trainer.best_weights()  # a converging stage's best epoch so far, restored when it ends
        write_checkpoint(self.folder, self.model, state, {BEST_WEIGHTS_FILE: best} if best is not None else {})


def write_checkpoint(folder, model, state, arrays=None):
    """Writes one checkpoint into `folder/epoch_NNNN/` (NNNN: `state["epochs_done"]`), atomically.

    The module docstring says how: written whole into `.partial`, renamed,
    then named in `LATEST`; older checkpoints deleted after that.

    Args:
        folder: the checkpoint folder (created if missing).
        model: the Keras model to save as `model.keras`.
        state: a dict with at least `epochs_done`, `stage_results`,
            `history` and `config`, saved as `state.json` (NumPy scalars
            made JSON numbers).
        arrays: optional dict file name -> list of arrays, each saved with
            `np.savez` (`read_checkpoint` loads `best_weights.npz` and
            `optimizer.npz`).

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> write_checkpoint(tmp_dir, model, {"epochs_done": 4, "stage_results": [], "history": [], "config": {}})
    >>> read_checkpoint(tmp_dir)[1]["epochs_done"]
    4
    """
    folder = os.fspath(folder)
    name = f"epoch_{int(state['epochs_done']):04d}"
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, name + ".partial")
    final = os.path.join(folder, name)
    for leftover in (partial, final):  # from a run killed while writing this epoch
        if os.path.isdir(leftover):
            shutil.rmtree(leftover)
    os.makedirs(partial)
    model.save(os.path.join(partial, MODEL_FILE))
    with open(os.path.join(partial, STATE_FILE), "w") as f:
        json.dump(_json_safe(state), f)
    for file_name, values in (arrays or {}).items():
        np.savez(os.path.join(partial, file_name), *values)
    os.rename(partial, final)
    latest_tmp = os.path.join(folder, LATEST + ".tmp")
    with open(latest_tmp, "w") as f:
        f.write(name + "\n")
    os.replace(latest_tmp, os.path.join(folder, LATEST))
    for entry in os.listdir(folder):
        if entry.startswith("epoch_") and entry != name:
            shutil.rmtree(os.path.join(folder, entry), ignore_errors=True)


def fresh_progress():
    """The `LayerwiseTrainer`'s progress before a stage's first epoch (what `progress()` returns, saved here).

    `patch_figures`: the clustering figures of a cluster-first stage in
    training (clustered when it began).

    Example:

    >>> fresh_progress()["stage"], fresh_progress()["finished"]
    (0, False)
    """
    return {"stage": 0, "stage_epochs": 0, "best": None, "best_epoch": None, "best_logs": None, "wait": 0,
            "ended": [], "finished": False, "patch_figures": None}


def progress_after(budgets, epochs_done):
    """Where a growth of fixed budgets stands after `epochs_done` epochs (for `LayerwiseTrainer.restore`).

    Args:
        budgets: each stage's budget in epochs.
        epochs_done: int, the epochs completed.

    Returns:
        A `fresh_progress()` dict with `stage` (0-based index of the stage in
        training), `stage_epochs`, `ended` (the epochs at whose end a stage
        ended) and `finished` filled in.

    Example:

    >>> progress = progress_after([2, 3, 1], 4)
    >>> progress["stage"], progress["ended"], progress["stage_epochs"], progress["finished"]
    (1, [1], 2, False)
    """
    ends = np.cumsum(budgets)
    done = int(np.searchsorted(ends, epochs_done, side="right"))
    return {**fresh_progress(), "stage": done, "ended": [int(e) - 1 for e in ends[:done]],
            "stage_epochs": int(epochs_done) - (int(ends[done - 1]) if done else 0), "finished": done == len(budgets)}


def has_checkpoint(folder):
    """Whether `folder` holds a checkpoint (`LATEST` exists).

    Args:
        folder: a checkpoint folder.

    Returns:
        bool.

    Example:

    >>> has_checkpoint(tmp_dir)  # an empty folder
    False
    """
    return os.path.isfile(os.path.join(os.fspath(folder), LATEST))


def read_checkpoint(folder):
    """Loads the latest checkpoint of a growth.

    Args:
        folder: the checkpoint folder `GrowthCheckpoint` wrote.

    Returns:
        `(model, state)`: the saved `Sequential` (compiled, with its
        optimizer state) and the `state.json` dict (`epochs_done`,
        `stage_results`, `trainer` (the trainer's `progress()`), `history`,
        `config`), with `best_weights`: the list of arrays of a converging
        stage's best epoch, or None, and `optimizer_weights`: a cached
        growth's optimizer variables (`growth.cached`), or None.

    Raises:
        FileNotFoundError: if there is no checkpoint in `folder`.
        ValueError: if the checkpoint's files are missing, truncated or
            inconsistent (the message names the file).

    Example:

    The module's example reads the checkpoint of a growth; a folder without
    one:

    >>> read_checkpoint(tmp_dir)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: no checkpoint to resume from: .../LATEST does not exist.
    """

    folder = os.fspath(folder)
    latest = os.path.join(folder, LATEST)
    if not os.path.isfile(latest):
        raise FileNotFoundError(f"no checkpoint to resume from: {latest} does not exist.")
    with open(latest) as f:
        name = f.read().strip()
    path = os.path.join(folder, name)
    if not name.startswith("epoch_") or not os.path.isdir(path):
        raise ValueError(f"{latest} names {name!r}, which is not a checkpoint folder in {folder}.")
    state_path = os.path.join(path, STATE_FILE)
    try:
        with open(state_path) as f:
            state = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint state {state_path} is missing or corrupt: {err}") from err
    missing = {"epochs_done", "stage_results", "history", "config"} - set(state)
    if missing:
        raise ValueError(f"checkpoint state {state_path} lacks {sorted(missing)}.")
    model = load_keras_file(os.path.join(path, MODEL_FILE))
    for key, file_name in (("best_weights", BEST_WEIGHTS_FILE), ("optimizer_weights", OPTIMIZER_FILE)):
        state[key] = None
        array_path = os.path.join(path, file_name)
        if os.path.isfile(array_path):
            try:
                with np.load(array_path) as arrays:
                    state[key] = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
            except (OSError, ValueError, KeyError) as err:
                raise ValueError(f"checkpoint weights {array_path} are missing or corrupt: {err}") from err
    return model, state
