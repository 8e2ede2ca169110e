"""Benchmark: a CIFAR-10 config grown layer by layer vs the same network trained end to end by SGD.

One invocation, one machine, the same data: grows the config's network
(`layerwise_keras.runs.pipeline.grow`) and trains its end-to-end baseline
(`pipeline.end_to_end`), then reports for both: test accuracy on the 10,000
official test images (not used by the benchmark itself: no early stopping or
tuning on them; the configs chosen before commit c9577f0 were compared on their
test accuracy, see docs/results.md), accuracy on the 1,000
byte-exact test images and on the same 1,000 images from the JPEG copy,
validation accuracy after each epoch/stage with its wall time, time to reach
73.4 % validation accuracy (the paper's CIFAR-10 figure), k-means time share
and peak memory. Writes `benchmarks/results/cifar10_<config>.json` and `.md`
(`..._quick.*` with `--quick`, which uses a slice, one epoch per stage and
stages 8x narrower (`variants.smoke_config`): smoke-test figures, never results).

The local CIFAR-10 copy is JPEG re-encoded: every figure is labelled
"CIFAR-10 (JPEG re-encoded local copy)".

Usage:
    python benchmarks/cifar10.py [--config cifar10_paper] [--data-dir DIR] [--quick] [--seed 0] [--save-model M.keras]
                                 [--probe-epochs N]
    python benchmarks/cifar10.py --config cifar10_best --seed 1 --run-dir /work/runs/best_s1 [--resume]
    python benchmarks/cifar10.py --markdown-only benchmarks/results/cifar10_cifar10_paper.json [--plot PNG]
    python benchmarks/cifar10.py --config cifar10_best --atlas M.keras   (the pictures of a saved run)

`--plot` and `--atlas` never replace an existing picture unless given `--overwrite`.

Long runs span sessions with `--run-dir DIR` (a folder outside the repository): the growth is checkpointed
there at every epoch end, its finished figures and model are kept, and the end-to-end twin is checkpointed by
Keras' `BackupAndRestore`. After a kill, the same command with `--resume` continues from the last completed
epoch (the growth's data order depends on the epoch only, so a resumed growth trains as an uninterrupted one
with `--run-dir` does); the results then say `resumed`, and epoch times count the kept epochs, not the work
lost after the last checkpoint. A resume on another machine or software is refused (its epoch times would
mix two machines); a `--save-model` file written when the growth finished is kept, so the same command
resumes. A seed other than 0 adds `_seed<N>` to the results' file names.
    python benchmarks/cifar10.py --add-probes benchmarks/results/cifar10_cifar10_paper.json --model M.keras --probe-epochs 2

`--add-probes` measures code probes (`--probe-epochs`) afterwards on the model a run saved with `--save-model`:
it checks that the model gives the file's test accuracy on the same split (so it is that run's) and that this
is the same machine and software, then adds the probes to the file, with their own command, commit and date.
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from _common import (HERE, RESULTS, RunDirError, commit, cpu_description, machine_mismatch, now,  # noqa: E402
                     stage_drops, stage_epochs, write_results)
from layerwise_keras import datasets  # noqa: E402
from layerwise_keras.runs.config import load_config, validate_config  # noqa: E402
from layerwise_keras.runs.variants import smoke_config  # noqa: E402
from layerwise_keras.runs.pipeline import end_to_end, grow, load_splits, machine_info  # noqa: E402
from layerwise_keras.runs.probes import add_probe_figures, probe_codes  # noqa: E402
from layerwise_keras.runs.training import top1_accuracy  # noqa: E402

PAPER_ACCURACY = 0.734
DEFAULT_DATA = os.path.join(HERE, os.pardir, os.pardir, "shared", "data")


class EpochClock(keras.callbacks.Callback):
    """Records the wall time since `fit` began and the validation accuracy at every epoch end.

    With `path`, the figures are also written there (JSON) at every epoch end and read back when a resumed
    `fit` begins: the epochs before the resume point keep their times, and the resumed epochs continue from
    the last kept one (the time lost between the last checkpoint and the kill is not counted).
    """

    def __init__(self, path=None):
        super().__init__()
        self.seconds, self.val_accuracy, self.path = [], [], path
        self._offset = 0.0
        if path and os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            self.seconds, self.val_accuracy = saved["seconds"], saved["val_accuracy"]

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first:  # a resumed fit starts at its initial epoch: keep the figures of the epochs before it
            self._first = False
            del self.seconds[epoch:], self.val_accuracy[epoch:]
            self._offset = self.seconds[-1] if self.seconds else 0.0

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self._offset + time.perf_counter() - self._start)
        self.val_accuracy.append(float((logs or {}).get("val_accuracy", float("nan"))))
        if self.path:
            with open(self.path + ".tmp", "w") as f:
                json.dump({"seconds": self.seconds, "val_accuracy": self.val_accuracy}, f)
            os.replace(self.path + ".tmp", self.path)


def _time_to(clock, target):
    for seconds, accuracy in zip(clock.seconds, clock.val_accuracy):
        if accuracy >= target:
            return seconds
    return None


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _gpu_peak_mib():
    """Peak accelerator memory of the JAX backend's first device (None on CPU or other backends)."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform == "gpu" else None
    return stats["peak_bytes_in_use"] / 2**20 if stats and "peak_bytes_in_use" in stats else None


def _exact_subset_accuracy(model, config, data_dir):
    """Accuracy on the 1,000 byte-exact official test images and on their JPEG twins."""
    out = {}
    for split in ("test_exact", "test_exact_jpeg"):
        x, y = _images(config, split, data_dir)
        out[split] = top1_accuracy(model.predict(x, batch_size=256, verbose=0), y)
    return out


def _images(config, split, data_dir):
    """A CIFAR-10 split as the config's network sees it (its `normalize` option)."""
    x, y = datasets.load_arrays("cifar10", split, data_dir)
    normalize = config["dataset"].get("options", {}).get("normalize", "unit")
    return datasets.normalize_images(x, normalize, name="cifar10", data_dir=data_dir), y


def run(config_name, data_dir, quick=False, seed=0, train=None, skip_baseline=False, on_partial=None,
        save_model=None, probe_epochs=None, run_dir=None, resume=False):
    """Grows the config's network and trains its twin; returns the report (see the module docstring).

    With `run_dir` (a folder outside the repository), the run can continue after being killed: the growth is
    checkpointed there every epoch (`runs.grow(checkpoint_dir=...)`), the finished growth's figures and model
    are kept there, and the twin is checkpointed by Keras' `BackupAndRestore`. `resume=True` continues from
    what `run_dir` holds; without it, a `run_dir` that holds a run is refused.
    """
    config = load_config(config_name)
    config["dataset"].setdefault("options", {})["data_dir"] = data_dir
    if probe_epochs is not None:
        config["probe_epochs"] = probe_epochs
    if quick:
        config = smoke_config(config, train=train or 2000, val=500, test=1000)
    elif train:
        config["dataset"]["train"] = train
    splits = load_splits(config["dataset"], seed=seed)
    report = {"config": config, "data": splits["data_label"], "sizes": {
        k: int(len(splits[f"y_{k}"])) for k in ("train", "val", "test")}}

    paths = _run_paths(run_dir, config, seed, resume)
    if paths and os.path.exists(paths["layerwise"]):  # the growth finished in an earlier session
        with open(paths["layerwise"]) as f:
            report["layerwise"] = json.load(f)
        model = keras.saving.load_model(paths["model"])
        print(f"resume: the growth is done ({paths['layerwise']}); continuing with the end-to-end twin", flush=True)
    else:
        report["layerwise"] = _grow_layerwise(config, splits, seed, data_dir, paths, resume)
        model = keras.saving.load_model(paths["model"]) if paths else report["layerwise"].pop("_model")
    if save_model:
        os.makedirs(os.path.dirname(os.path.abspath(save_model)), exist_ok=True)
        model.save(save_model)  # the grown model, for report pictures (cluster atlases) after the run
    if not skip_baseline:
        if on_partial is not None:  # keep the layerwise figures if the baseline is cut short
            on_partial(report)
        report["end_to_end"] = _train_twin(config, splits, seed, data_dir, paths)
        ours_t = report["layerwise"]["seconds_to_paper_accuracy"]
        base_t = report["end_to_end"]["seconds_to_paper_accuracy"]
        report["time_ratio"] = report["layerwise"]["train_seconds"] / report["end_to_end"]["train_seconds"]
        report["time_to_paper_accuracy_ratio"] = None if ours_t is None or base_t is None else ours_t / base_t
    return report


# The files of a resumable run, in its --run-dir.
RUN_FILES = {"checkpoint": "growth_checkpoint", "clock": "growth_clock.json", "layerwise": "layerwise.json",
             "model": "layerwise.keras", "twin_backup": "twin_backup", "twin_clock": "twin_clock.json",
             "run": "run.json"}


def _run_paths(run_dir, config, seed, resume):
    """The files of a resumable run in `run_dir` (None without one).

    Refuses a used folder unless `resume`, and a resume with another config or seed, or on another machine or
    software than the run began on (its epoch times, and so its time ratio, would mix two machines).
    """
    if run_dir is None:
        if resume:
            raise RunDirError("--resume needs --run-dir (the folder the run keeps its checkpoints in)")
        return None
    paths = {k: os.path.join(run_dir, v) for k, v in RUN_FILES.items()}
    identity = {"config": json.loads(json.dumps(config)), "seed": seed}
    if os.path.exists(paths["run"]):
        if not resume:
            raise RunDirError(f"{run_dir} already holds a run; pass --resume to continue it (or use a new folder)")
        with open(paths["run"]) as f:
            started = json.load(f)
        if {k: started.get(k) for k in identity} != identity:
            raise RunDirError(f"{run_dir} holds a run of another config or seed; resume it with the same "
                              "--config and --seed, or use a new folder")
        differs = machine_mismatch(started.get("machine"))
        if differs:
            raise RunDirError(f"{run_dir} holds a run begun on another machine or software ({differs}); its "
                              "epoch times would mix two machines: start it over in a new folder")
    elif resume:
        raise RunDirError(f"--resume: {run_dir} holds no run to resume")
    else:
        os.makedirs(run_dir, exist_ok=True)
        with open(paths["run"], "w") as f:
            json.dump(dict(identity, machine=machine_info()), f)
    return paths


def _growth_done(run_dir):
    """Whether `run_dir` holds a run whose growth finished (its figures and model are kept there)."""
    return run_dir is not None and os.path.exists(os.path.join(run_dir, RUN_FILES["layerwise"]))


def _grow_layerwise(config, splits, seed, data_dir, paths, resume):
    from layerwise_keras.growth.checkpoint import has_checkpoint

    clock = EpochClock(paths["clock"] if paths else None)
    if config.get("cache"):  # grown stage by stage outside one fit: the growth records its own clock
        resuming = bool(paths) and resume and has_checkpoint(paths["checkpoint"])
        model, ours = grow(config, splits, seed=seed, verbose=2, checkpoint_dir=paths["checkpoint"] if paths else None,
                           resume=resuming)
        clock.seconds, clock.val_accuracy = ours["history"]["seconds"], ours["history"]["val_accuracy"]
    elif paths:
        resuming = resume and has_checkpoint(paths["checkpoint"])
        model, ours = grow(config, splits, seed=seed, verbose=2, callbacks=[clock],
                           checkpoint_dir=paths["checkpoint"], resume=resuming)
    else:
        model, ours = grow(config, splits, seed=seed, verbose=2, callbacks=[clock])
    kmeans_seconds = sum(s.get("kmeans_seconds", 0.0) for s in ours["stages"])
    # A resumed growth's fit time counts this process only: the clock holds every kept epoch's time.
    train_seconds = clock.seconds[-1] if paths and clock.seconds else ours["train_seconds"]
    figures = {
        "test_accuracy": ours["test_accuracy"],
        "exact_subset": _exact_subset_accuracy(model, config, data_dir),
        "train_seconds": train_seconds,
        "stages": [{k: v for k, v in s.items() if k != "kmeans_counts"} for s in ours["stages"]],
        "epoch_seconds": clock.seconds,
        "epoch_val_accuracy": clock.val_accuracy,
        "seconds_to_paper_accuracy": _time_to(clock, PAPER_ACCURACY),
        "kmeans_share": kmeans_seconds / train_seconds,
        "peak_memory_mib": _peak_mib(),
        "gpu_peak_memory_mib": _gpu_peak_mib(),
    }
    if "resumed_from_epoch" in ours:
        figures["resumed_from_epoch"] = ours["resumed_from_epoch"]
    if not paths:
        figures["_model"] = model
        return figures
    model.save(paths["model"])
    with open(paths["layerwise"], "w") as f:
        json.dump(figures, f)
    return figures


def _train_twin(config, splits, seed, data_dir, paths):
    clock = EpochClock(paths["twin_clock"] if paths else None)
    callbacks = [clock]
    resumed = paths is not None and os.path.exists(paths["twin_backup"])
    if paths:
        callbacks.insert(0, keras.callbacks.BackupAndRestore(paths["twin_backup"]))
    base_model, base = end_to_end(config, splits, seed=seed, verbose=2, callbacks=callbacks)
    figures = {
        "test_accuracy": base["test_accuracy"],
        "exact_subset": _exact_subset_accuracy(base_model, config, data_dir),
        "train_seconds": clock.seconds[-1] if paths and clock.seconds else base["train_seconds"],
        "epoch_seconds": clock.seconds,
        "epoch_val_accuracy": clock.val_accuracy,
        "seconds_to_paper_accuracy": _time_to(clock, PAPER_ACCURACY),
        "peak_memory_mib": _peak_mib(),
        "gpu_peak_memory_mib": _gpu_peak_mib(),
    }
    if resumed:
        figures["resumed"] = True
    return figures


def _fmt(value, spec="{:.4f}"):
    return "—" if value is None else spec.format(value)


def markdown(report):
    lw, e2e = report["layerwise"], report.get("end_to_end")
    lines = [
        f"# CIFAR-10: `{report['config']['name']}` grown layer by layer vs end-to-end SGD",
        "",
        f"- data: {report['data']}; sizes {report['sizes']}",
        f"- command: `{report['command']}`",
        f"- commit: `{report['commit']}`, date: {report['date']}",
        f"- machine: {cpu_description(report['machine'])}, "
        f"GPUs: {', '.join(report['machine']['gpus']) or 'none'}; "
        + (f"TensorFlow {report['machine']['tensorflow']}, " if report["machine"].get("tensorflow") else "")
        + f"Keras {report['machine']['keras']} ({report['machine']['backend']} backend)",
    ]
    if not report.get("complete", True):
        lines.append("- **INCOMPLETE: written after the layerwise run, before the end-to-end baseline finished.**")
    if report.get("resumed") or lw.get("resumed_from_epoch") is not None or (e2e or {}).get("resumed"):
        lines.append(f"- resumed after a kill (`--resume`): the growth from the checkpoint of epoch "
                     f"{lw.get('resumed_from_epoch', '—')}"
                     + (", the twin from its BackupAndRestore backup" if (e2e or {}).get("resumed") else "")
                     + "; epoch times count the kept epochs")
    if report["quick"]:
        lines.append("- **QUICK MODE: a slice of the data and one epoch per stage; smoke-test figures, not results.**")
    lines += [
        "",
        "| | test acc (JPEG copy) | byte-exact 1,000 | same 1,000, JPEG | fit s | s to 73.4 % val | peak host MiB "
        "| peak GPU MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in (("layerwise", lw), ("end-to-end SGD", e2e)):
        if r is None:
            continue
        lines.append(
            f"| {name} | {_fmt(r['test_accuracy'])} | {_fmt(r['exact_subset']['test_exact'])} | "
            f"{_fmt(r['exact_subset']['test_exact_jpeg'])} | {r['train_seconds']:.0f} | "
            f"{_fmt(r['seconds_to_paper_accuracy'], '{:.0f}')} | {r['peak_memory_mib']:.0f} | "
            f"{_fmt(r.get('gpu_peak_memory_mib'), '{:.0f}')} |"
        )
    lines += ["", f"k-means share of the layerwise fit time: {lw['kmeans_share']:.1%}."]
    if e2e is not None:
        lines.append(f"Layerwise / end-to-end fit time: {report['time_ratio']:.2f}; time to 73.4 % validation "
                     f"accuracy ratio: {_fmt(report['time_to_paper_accuracy_ratio'], '{:.2f}')}.")
    first = [n for n, s in enumerate(report["config"]["stages"], start=1) if s.get("cluster") == "patches"]
    probed = any("code_probe_val_accuracy" in s for s in lw["stages"])
    lines += ["", "Stage n's validation accuracy is its two-layer net's, before its clustering step; stage n+1's is a "
              "net trained on stage n's code, after it."
              + (f" Cluster-first stages ({', '.join(map(str, first))}): their head's, trained on their own code "
                 "after clustering." if first else ""), "",
              "| stage | val acc at stage end | clusters used | stage s | k-means s | k-means iterations |"
              + (" code probe val acc | cost of clustering |" if probed else ""),
              "|---|---|---|---|---|---|" + ("---|---|" if probed else "")]
    drops = stage_drops(lw["stages"])
    if drops is not None and len(lw["stages"]) > 1:
        lines.insert(-2, "Every stage at least as accurate as the one before (validation): " + (
            "yes." if not drops else f"no (lower than the stage before: stage {', '.join(map(str, drops))})."))
        lines.insert(-2, "")
    for s in lw["stages"]:
        lines.append(f"| {s['stage']} | {_fmt(s.get('val_accuracy'))} | {_fmt(s.get('cluster_usage'), '{:.2f}')} | "
                     f"{s['stage_seconds']:.0f} | {_fmt(s.get('kmeans_seconds'), '{:.0f}')} | "
                     f"{s.get('kmeans_iterations', '—')} |"
                     + (f" {_fmt(s.get('code_probe_val_accuracy'))} | {_fmt(s.get('clustering_cost'), '{:+.4f}')} |"
                        if probed else ""))
    if probed:
        epochs = sorted({s["code_probe_epochs"] for s in lw["stages"] if "code_probe_epochs" in s})
        if report.get("probes"):
            p = report["probes"]
            lines += ["", f"Code probes measured after the run on its saved model (test accuracy "
                      f"{p['model_test_accuracy']:.4f}, the run's), same machine: `{p['command']}`, commit "
                      f"`{p['commit']}`, {p['date']}, {p['seconds']:.0f} s."]
        lines += ["", f"Code probe: a fresh head of the stage's readout kind trained for {'/'.join(map(str, epochs))} "
                  "epochs on the stage's frozen code (after its clustering step), validation accuracy; cost of "
                  "clustering = the stage's own validation accuracy minus the probe's (paper-order stages only; a "
                  "cluster-first stage's own accuracy is already a head on its code). Not in the fit time."]
    return "\n".join(lines) + "\n"


def plot(report, path, overwrite=False):
    """Draws the layerwise run's per-epoch validation accuracy, stage by stage, beside its end-to-end twin's.

    An existing `path` is replaced only with `overwrite` (FileExistsError otherwise).
    """
    from layerwise_keras.monitoring.plots import plot_stage_accuracy

    lw, e2e = report["layerwise"], report.get("end_to_end") or {}
    stage_of_epoch = [s["stage"] for s, epochs in zip(lw["stages"], stage_epochs(report)) for _ in range(epochs)]
    metrics = {
        "name": f"{report['config']['name']}, CIFAR-10 JPEG copy",
        "test_accuracy": lw["test_accuracy"],
        "history": {"val_accuracy": lw["epoch_val_accuracy"], "stage": stage_of_epoch},
        "stages": lw["stages"],
        "baseline": {"val_accuracy": e2e["epoch_val_accuracy"], "test_accuracy": e2e["test_accuracy"]} if e2e else {},
    }
    return plot_stage_accuracy(metrics, path, overwrite=overwrite)


def _refuse(message):
    print(f"cifar10.py: error: --add-probes: {message}", file=sys.stderr)
    sys.exit(2)


# A saved model is the run's when its test accuracy is the file's within this (10 of 10,000 images: float
# differences between the compiled training graph and a reloaded model's predict flip a few near-ties).
SAME_RUN_TOLERANCE = 1e-3


def add_probes(results_path, model_path, epochs, data_dir, command, seed=0, verbose=2):
    """Adds code probes of `epochs` epochs, measured on the model a run saved, to that run's results file.

    Exits 2 (file untouched) on a quick-mode file, a file that has probes already, another machine or
    software, or a model whose test accuracy on the file's split is not the file's.
    """
    started_at = commit()  # the code that runs
    with open(results_path) as f:
        report = json.load(f)
    if report.get("quick"):
        _refuse(f"{results_path} is a quick-mode smoke run, not a result.")
    if any("code_probe_val_accuracy" in s for s in report["layerwise"]["stages"]):
        _refuse(f"{results_path} holds code probes already.")
    differs = machine_mismatch(report.get("machine"))
    if differs:
        _refuse(f"{results_path} was measured on another machine or software ({differs}).")
    config = validate_config(report["config"], source=results_path)
    config["dataset"].setdefault("options", {})["data_dir"] = data_dir
    splits = load_splits(config["dataset"], seed=seed)
    model = keras.saving.load_model(model_path)
    test = top1_accuracy(model.predict(splits["x_test"], batch_size=256, verbose=0), splits["y_test"])
    if abs(test - report["layerwise"]["test_accuracy"]) > SAME_RUN_TOLERANCE:
        _refuse(f"{model_path} gives test accuracy {test:.4f} on this split, the file {results_path} "
                f"{report['layerwise']['test_accuracy']:.4f}: not that run's model (or another --seed).")
    start = time.perf_counter()
    add_probe_figures(report["layerwise"]["stages"],
                      probe_codes(model, dict(config, probe_epochs=epochs), splits, seed=seed, verbose=verbose))
    report["probes"] = {"command": command, "commit": started_at,
                        "date": now(), "seconds": time.perf_counter() - start, "model_test_accuracy": test}
    write_results(os.path.dirname(os.path.abspath(results_path)), os.path.splitext(os.path.basename(results_path))[0],
                  report, markdown(report))
    return report


def draw_atlases(model_path, config_name, data_dir, folder, images=1000, shown=48, overwrite=False):
    """Draws `<folder>/<config name>_atlas_stage<n>.png` for every clustered stage of a model saved by `--save-model`.

    Each picture shows `shown` centroids with evenly spaced ids (not the most used, which are flat colours)
    and their 8 nearest positions among the first `images` test images (JPEG copy), nearness measured where
    k-means measured it (after the stage's whitening). Existing pictures are replaced only with `overwrite`:
    otherwise a FileExistsError naming them, before anything is drawn.
    """
    from layerwise_keras.growth.names import clustered_stages, stage_layer
    from layerwise_keras.monitoring.plots import plot_cluster_atlas

    model = keras.saving.load_model(model_path)
    config = load_config(config_name)  # a bundled name or a path: the pictures are named after the config's name
    paths = {n: os.path.join(folder, f"{config['name']}_atlas_stage{n}.png") for n in clustered_stages(model)}
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace them.")
    x = _images(config, "test", data_dir)[0][:images]
    for n, path in paths.items():
        k = stage_layer(model, n, "assign").n_clusters
        ids = list(range(0, k, max(1, k // shown)))[:shown]
        plot_cluster_atlas(model, x, path, stage=n, per_cluster=8, clusters=ids, overwrite=overwrite)
    return list(paths.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cifar10_paper", help="bundled config name or JSON path")
    parser.add_argument("--data-dir", default=os.environ.get(datasets.DATA_ENV) or DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="smoke mode: a slice, one epoch per stage")
    parser.add_argument("--train", type=int, default=None, help="override the number of training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--probe-epochs", type=int, default=None, metavar="N",
                        help="after growth, train a fresh head on each paper-order stage's code for N epochs "
                        "(config probe_epochs; default: the config's, 0 = none)")
    parser.add_argument("--output", default=RESULTS, help="results folder")
    parser.add_argument("--run-dir", metavar="DIR", help="keep checkpoints here (outside the repository) so that a "
                        "killed run continues with --resume: the growth every epoch, its finished figures and "
                        "model, the twin every epoch (Keras' BackupAndRestore)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir (same --config, "
                        "--seed and options)")
    parser.add_argument("--save-model", metavar="PATH.keras", help="also save the grown model there (must not exist)")
    parser.add_argument("--add-probes", metavar="RESULTS_JSON", help="add code probes (--probe-epochs) measured "
                        "on the model a run saved (--model) to its results file (no growth)")
    parser.add_argument("--model", metavar="MODEL.keras", help="with --add-probes: the run's --save-model file")
    parser.add_argument("--markdown-only", metavar="RESULTS_JSON",
                        help="only rewrite the markdown table of a results file (no training)")
    parser.add_argument("--plot", metavar="PNG", help="with --markdown-only: also draw the per-epoch validation "
                        "accuracy of both sides, stage by stage (monitoring.plots.plot_stage_accuracy)")
    parser.add_argument("--atlas", metavar="MODEL.keras", help="only draw the cluster atlases of a model saved by "
                        "--save-model into IMAGES_DIR/<config name>_atlas_stage<n>.png (no training)")
    parser.add_argument("--images-dir", default=os.path.normpath(os.path.join(HERE, os.pardir, "docs", "images")))
    parser.add_argument("--overwrite", action="store_true", help="let --plot and --atlas replace existing pictures "
                        "(without it they stop with an error)")
    args = parser.parse_args(argv)
    command = "python benchmarks/cifar10.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.atlas:
        try:
            print("\n".join(draw_atlases(args.atlas, args.config, args.data_dir, args.images_dir,
                                         overwrite=args.overwrite)))
        except FileExistsError as err:
            parser.error(str(err))
        return 0
    if args.add_probes:
        if not args.model or not args.probe_epochs:
            parser.error("--add-probes needs --model M.keras and --probe-epochs N >= 1")
        add_probes(args.add_probes, args.model, args.probe_epochs, args.data_dir, command, args.seed)
        return 0
    if args.markdown_only:
        if args.plot and os.path.exists(args.plot) and not args.overwrite:
            parser.error(f"{args.plot} already exists; pass --overwrite to replace it.")
        with open(args.markdown_only) as f:
            report = json.load(f)
        with open(os.path.splitext(args.markdown_only)[0] + ".md", "w") as f:
            f.write(markdown(report))
        if args.plot:
            plot(report, args.plot, overwrite=args.overwrite)
        return 0
    if args.save_model and args.resume and os.path.exists(args.save_model) and _growth_done(args.run_dir):
        # The same command again after a kill in the twin: the grown model was saved there before the kill.
        print(f"resume: {args.save_model} exists (saved when the growth finished): kept as it is", flush=True)
        args.save_model = None
    if args.save_model and (not args.save_model.endswith(".keras") or os.path.exists(args.save_model)):
        parser.error(f"--save-model needs a new .keras path; {args.save_model!r} exists or is not .keras")
    start = time.perf_counter()
    started_at = commit()  # the code that runs: later commits while it trains do not change it

    def finish(report, complete):
        report.update(command=command, commit=started_at, date=now(), machine=machine_info(), quick=args.quick,
                      complete=complete, total_seconds=time.perf_counter() - start, seed=args.seed)
        if args.resume:
            report["resumed"] = True  # total_seconds then counts this session only
        stem = (f"cifar10_{report['config']['name']}" + (f"_seed{args.seed}" if args.seed else "")
                + ("_quick" if args.quick else ""))
        write_results(args.output, stem, report, markdown(report))

    try:
        report = run(args.config, args.data_dir, args.quick, args.seed, args.train, args.skip_baseline,
                     on_partial=lambda partial: finish(dict(partial), complete=False), save_model=args.save_model,
                     probe_epochs=args.probe_epochs, run_dir=args.run_dir, resume=args.resume)
    except RunDirError as err:
        parser.error(str(err))
    finish(report, complete=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
