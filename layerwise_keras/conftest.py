"""The objects the docstring examples share, for `pytest --doctest-modules layerwise_keras` (`make test`).

Most examples define what they use. The few that need a trained model, a
configuration or a run's output folder use the names below, built once per
session (small and seeded: a few seconds on a CPU) and added to an example's
namespace only when its docstring mentions them:

* `tmp_dir`: a new empty folder (a `str`) for the example's files;
* `x`, `y`: 128 `datasets.hierarchical_digits` images (float32
  `[128, 27, 27, 1]`, seed 0) and their labels (10 classes);
* `trainer`, `model`: the `LayerwiseTrainer` of three stages
  (`Stage(8, 3, clusters=8)`, `Stage(8, 3, clusters=8)`, `Stage(8, 3)`, one
  epoch each) and the compiled model it grew on `x, y`: 27x27 -> 9x9 (K=8)
  -> 3x3 (K=8) -> 1x1 -> 10 logits. Shared by the examples, which do not
  change them;
* `config`: a small validated configuration (`hierarchical_digits`: 128 /
  32 / 32 images, the same three stages), a new copy per example;
* `splits`: `datasets.load_splits(config["dataset"])`;
* `run_dir`: a copy, per example, of the folder `runs.run(config, ...)`
  wrote (`model.keras`, `saved_model/1/`, `metrics.json`, `config.json`).

Every example runs in a new empty working directory, and one that leaves a
file there fails: examples write into `tmp_dir`, never where they run.
"""

import copy
import os
import re
import shutil
import warnings

import pytest

STAGES = [{"width": 8, "kernel_size": 3, "clusters": 8, "epochs": 1},
          {"width": 8, "kernel_size": 3, "clusters": 8, "epochs": 1},
          {"width": 8, "kernel_size": 3, "epochs": 1}]

_CACHE = {}


def _cached(name, build):
    if name not in _CACHE:
        with warnings.catch_warnings():  # a 1-epoch stage warns that it ended near chance accuracy
            warnings.simplefilter("ignore")
            _CACHE[name] = build()
    return _CACHE[name]


def _data():
    from layerwise_keras.datasets import hierarchical_digits

    images, labels, _ = hierarchical_digits(128, seed=0)
    return images, labels


def _grown():
    import keras

    from layerwise_keras import LayerwiseTrainer, Stage, input_model

    images, labels = _cached("data", _data)
    keras.utils.set_random_seed(0)
    trainer = LayerwiseTrainer([Stage(**s) for s in STAGES], num_classes=10, kmeans_data=images, verbose=0)
    model = input_model(images.shape[1:])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(images, labels, batch_size=32, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)
    return trainer, model


def _config():
    from layerwise_keras.runs.config import validate_config

    return validate_config({
        "name": "tiny_digits",
        "dataset": {"name": "hierarchical_digits", "train": 128, "val": 32, "test": 32},
        "stages": copy.deepcopy(STAGES),
        "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.003}},
        "batch_size": 32,
        "seed": 0,
    })


def _splits():
    from layerwise_keras.datasets import load_splits

    return load_splits(_cached("config", _config)["dataset"])


def _run(folder):
    from layerwise_keras.runs.pipeline import run

    path = f"{folder}/run"
    run(copy.deepcopy(_cached("config", _config)), path, verbose=0)
    return path


@pytest.fixture(scope="session")
def _session_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("doctest_objects")


@pytest.fixture(autouse=True)
def _doctest_objects(request, doctest_namespace, tmp_path, monkeypatch, _session_dir):
    """Adds the names above that the running doctest mentions to its namespace (and takes them out after)."""
    dtest = getattr(request.node, "dtest", None)
    if dtest is None:  # not a doctest
        yield
        return
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    used = set(re.findall(r"[A-Za-z_]\w*", "\n".join(example.source for example in dtest.examples)))
    added = {}
    if "tmp_dir" in used:
        (tmp_path / "files").mkdir()
        added["tmp_dir"] = str(tmp_path / "files")
    if used & {"x", "y"}:
        added["x"], added["y"] = _cached("data", _data)
    if used & {"model", "trainer"}:
        added["trainer"], added["model"] = _cached("grown", _grown)
    if "config" in used:
        added["config"] = copy.deepcopy(_cached("config", _config))
    if "splits" in used:
        added["splits"] = dict(_cached("splits", _splits))
    if "run_dir" in used:
        source = _cached("run", lambda: _run(str(_session_dir)))
        added["run_dir"] = shutil.copytree(source, str(tmp_path / "run"))
    doctest_namespace.update(added)
    with warnings.catch_warnings():
        # The examples' stages train a few gradient steps: the StageWarnings that say so are expected.
        warnings.filterwarnings("ignore", message=r"LayerwiseTrainer: stage \d+ ended near chance accuracy")
        warnings.filterwarnings("ignore", message=r"stage \d+'s clusters match the true classes of their level")
        # LayerwiseTrainer.restore's example stops a growth after its first epoch on purpose.
        warnings.filterwarnings("ignore", message="LayerwiseTrainer: fit ended before the growth did")
        yield
    for name in added:
        doctest_namespace.pop(name, None)
    left = sorted(os.listdir(workdir))
    if left:
        pytest.fail(f"the example wrote {left} into its working directory; write into tmp_dir instead.",
                    pytrace=False)
