"""Benchmark: what one training step of each growth stage costs against one of the end-to-end twin (profile).

Issue 25 asks for a stage epoch that costs at most 1.5x its twin's; this is
where the time goes, measured on the machine in one run. For a configuration
(default `cifar10_best`), the network each stage trains is built exactly as
the growth builds it (`growth.lifecycle.begin_stage` / `end_stage`, with
random centroids and an identity whitening in place of k-means: a step's cost
does not depend on their values), and timed on random batches of the
configuration's batch size and image shape:

- `step`: one `train_on_batch` of the network while the stage trains (the
  frozen stages in front, the stage's frozen code, its trainable head);
- `frozen`: the forward pass of the frozen layers in front of the stage's
  first trainable layer alone: the part every epoch recomputes because
  augmentation changes the images (what a cache of augmented variants would
  save);
- `twin`: one `train_on_batch` of the end-to-end twin (`end_to_end_model`);
- with `--variants V` (default: the config's own `cache_variants` when it
  caches), what a cached growth with V augmented copies
  (`"cache": true, "cache_variants": V`, `growth.cached`) spends instead on
  every stage after the first: `cached_step`, one `train_on_batch` of the
  stage's network on its cached input (its own frozen code and head, nothing
  in front), and `fill`, the seconds per image of caching that input
  (`StageInputs.advance` over the previous stage's input, as the growth does);
  a stage then costs its epochs of cached steps plus V + 1 fills of the
  training images (the copies and the un-augmented input k-means reads).

Each is timed with and without XLA (`jit_compile`), after two warm-up steps,
as the median of `--steps` steps. From them: the estimated seconds of an epoch
(`steps_per_epoch` steps of `--train` images) of each stage and of the twin,
and the growth's total over its stages' epochs against the twin's over the same
total (k-means, whitening and data loading not included: they are in the full
runs' results). Writes `benchmarks/results/cifar10_step_cost.{json,md}`
(`_quick` with `--quick`: the config's smoke copy, 3 steps).

Usage:
    python benchmarks/cifar10_step_cost.py [--config cifar10_best] [--steps 10] [--variants 4] [--quick]
"""

import argparse
import math
import os
import statistics
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from _common import RESULTS, commit, cpu_description, now, write_results  # noqa: E402
from layerwise_keras.growth.builder import end_to_end_model, input_model  # noqa: E402
from layerwise_keras.growth.stage_inputs import StageInputs, first_trainable  # noqa: E402
from layerwise_keras.growth.lifecycle import begin_stage, end_stage  # noqa: E402
from layerwise_keras.growth.stage import Stage  # noqa: E402
from layerwise_keras.runs.config import load_config  # noqa: E402
from layerwise_keras.runs.variants import smoke_config  # noqa: E402
from layerwise_keras.runs.machine import machine_info  # noqa: E402
from layerwise_keras.runs.training import compile_model  # noqa: E402

IMAGE_SHAPE = {"cifar10": (32, 32, 3), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1)}


def _median_seconds(fn, steps):
    fn()
    fn()  # warm-up: tracing (and XLA compiling)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fake_cluster(stage, rng):
    """A `cluster` for the lifecycle: random centroids of the layer's width, identity whitening (no k-means)."""
    def cluster(layer):
        dim = int(layer.output.shape[-1])
        whitening = (np.zeros(dim, "float32"), np.eye(dim, dtype="float32")) if stage.whiten is not None else None
        centroids = rng.normal(size=(stage.clusters, dim)).astype("float32")
        return types.SimpleNamespace(cluster_centers_=centroids), whitening, {}
    return cluster


def _cached_net(model, begin, inputs, config, jit_compile):
    """The network a cached growth trains for the stage from `begin` on: its layers on its cached input."""
    net = inputs.network(model.layers[begin:])
    net.compile(optimizer=keras.optimizers.get(config["optimizer"]), jit_compile=jit_compile,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return net


def measure(config, steps, jit_compile, seed=0, variants=None, fill_batch=256):
    """Median seconds per step of every stage's training network, its frozen front, and the twin.

    With `variants`, also each later stage's `cached_step` and `fill` (seconds per image) of a cached growth.
    """
    stages = [Stage.from_config(s) for s in config["stages"]]
    shape = IMAGE_SHAPE[config["dataset"]["name"]]
    rng = np.random.default_rng(seed)
    batch = config["batch_size"]
    x = rng.normal(size=(batch,) + shape).astype("float32")
    y = rng.integers(0, 10, batch)
    model = input_model(shape, name="growth")
    rows = []
    inputs, previous = StageInputs(rng.normal(size=(fill_batch,) + shape).astype("float32")), 0
    for index, stage in enumerate(stages):
        n = index + 1
        cluster = _fake_cluster(stage, rng)
        begin = len(model.layers)
        cached = {}
        if variants and index:  # the stage input cached from the previous one's, as grow_cached does
            front = model.layers[previous:begin]
            cached["fill"] = _median_seconds(lambda: inputs.advance(front, fill_batch), steps) / fill_batch
            inputs, previous = inputs.advance(front, fill_batch), begin
        begun = begin_stage(model, stage, n, 10, cluster, seed)
        if cached:
            net = _cached_net(model, begin, inputs, config, jit_compile)
            xc = inputs.data[:batch]
            cached["cached_step"] = _median_seconds(lambda: net.train_on_batch(xc, y), steps)
        compile_model(model, config)
        model.jit_compile = jit_compile
        row = {"stage": n, "step": _median_seconds(lambda: model.train_on_batch(x, y), steps)}
        front = model.layers[:first_trainable(model, 0)]
        row["frozen"] = 0.0
        if front:
            prefix = keras.Sequential([keras.Input(shape)] + front)
            prefix.compile(jit_compile=jit_compile)  # for its compiled predict function only
            row["frozen"] = _median_seconds(lambda: prefix.predict_on_batch(x), steps)
        row.update(cached)
        rows.append(row)
        if index < len(stages) - 1:
            end_stage(model, stage, n, cluster, begun)
    twin = compile_model(end_to_end_model(stages, shape, 10, seed=seed), config)
    twin.jit_compile = jit_compile
    return {"jit_compile": jit_compile, "stages": rows,
            "twin_step": _median_seconds(lambda: twin.train_on_batch(x, y), steps)}


def summarize(report):
    """Adds each measurement's epoch estimates and the growth-to-twin ratio (same total epochs)."""
    config = report["config"]
    steps_per_epoch = math.ceil(report["train"] / config["batch_size"])
    epochs = [s.get("epochs", 1) for s in config["stages"]]
    for m in report["measurements"]:
        for row, e in zip(m["stages"], epochs):
            row["epoch_seconds"] = row["step"] * steps_per_epoch
            row["epochs"] = e
        m["twin_epoch_seconds"] = m["twin_step"] * steps_per_epoch
        growth = sum(r["epoch_seconds"] * r["epochs"] for r in m["stages"])
        frozen = sum(r["frozen"] * steps_per_epoch * r["epochs"] for r in m["stages"])
        m["growth_seconds"], m["twin_seconds"] = growth, m["twin_epoch_seconds"] * sum(epochs)
        m["ratio"] = growth / m["twin_seconds"]
        m["frozen_share"] = frozen / growth
        if report.get("variants"):  # stage 1 as above; later stages on cached copies plus V + 1 fills
            copies = report["variants"] + 1
            cached = sum(r["epoch_seconds"] * r["epochs"] if "cached_step" not in r else
                         r["cached_step"] * steps_per_epoch * r["epochs"] + r["fill"] * report["train"] * copies
                         for r in m["stages"])
            m["cached_growth_seconds"], m["cached_ratio"] = cached, cached / m["twin_seconds"]
    return report


def markdown(report):
    machine = report["machine"]
    lines = [
        f"# Step cost: `{report['config']['name']}`'s stages against its end-to-end twin",
        "",
        f"- command: `{report['command']}`",
        f"- commit: `{report['commit']}`, date: {report['date']}",
        f"- machine: {cpu_description(machine)}, GPUs: {', '.join(machine['gpus']) or 'none'}; TensorFlow "
        f"{machine.get('tensorflow')}, Keras {machine['keras']} ({machine['backend']} backend)",
        f"- random batches of {report['config']['batch_size']} images; median of {report['steps']} steps after two "
        f"warm-up steps; epochs estimated for {report['train']} training images; k-means, whitening and data "
        "loading not included",
        "- ratio: the growth's stage epochs added up against the twin's epochs of the same total; frozen share: "
        "the part of the growth's time spent in the frozen layers in front of each stage's trainable ones",
    ]
    if report["quick"]:
        lines.append("- **QUICK MODE: the config's smoke copy (narrow stages), 3 steps; not results.**")
    if report.get("variants"):
        lines.append(f"- cached: a cached growth with {report['variants']} augmented copies (`\"cache\": true, "
                     f"\"cache_variants\": {report['variants']}`): stage 1 as uncached; each later stage's epochs of "
                     f"`cached step` plus {report['variants'] + 1} passes of `fill` (s per image) over the "
                     f"{report['train']} training images")
    lines += ["", "| XLA | stage | step s | frozen front s | epoch s (est.) | epochs | cached step s | fill ms/image |",
              "|---|---|---|---|---|---|---|---|"]
    for m in report["measurements"]:
        for r in m["stages"]:
            extra = (f"{r['cached_step']:.3f} | {1000 * r['fill']:.2f}" if "cached_step" in r else "— | —")
            lines.append(f"| {m['jit_compile']} | {r['stage']} | {r['step']:.3f} | {r['frozen']:.3f} "
                         f"| {r['epoch_seconds']:.0f} | {r['epochs']} | {extra} |")
        lines.append(f"| {m['jit_compile']} | twin | {m['twin_step']:.3f} | — | {m['twin_epoch_seconds']:.0f} "
                     f"| {sum(r['epochs'] for r in m['stages'])} | — | — |")
    lines += ["", "| XLA | growth s (est.) | twin s (est.) | ratio | frozen share | cached growth s (est.) "
              "| cached ratio |", "|---|---|---|---|---|---|---|"]
    for m in report["measurements"]:
        extra = (f"{m['cached_growth_seconds']:.0f} | {m['cached_ratio']:.2f}" if "cached_ratio" in m else "— | —")
        lines.append(f"| {m['jit_compile']} | {m['growth_seconds']:.0f} | {m['twin_seconds']:.0f} "
                     f"| {m['ratio']:.2f} | {m['frozen_share']:.2f} | {extra} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cifar10_best")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--variants", type=int, default=None,
                        help="also estimate a cached growth with this many augmented copies (default: the config's "
                             "cache_variants when it caches)")
    parser.add_argument("--quick", action="store_true", help="the config's smoke copy, 3 steps")
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    train = config["dataset"]["train"]
    if args.quick:
        config, args.steps = smoke_config(config, train=train, val=0, test=0), 3
    keras.utils.set_random_seed(0)
    if args.variants is None and config.get("cache"):
        args.variants = config.get("cache_variants")
    if args.variants is not None and args.variants < 1:
        parser.error(f"--variants must be >= 1, got {args.variants}")
    report = {"config": config, "train": train, "steps": args.steps, "quick": args.quick, "variants": args.variants,
              "command": " ".join(["python benchmarks/cifar10_step_cost.py",
                                   *(argv if argv is not None else sys.argv[1:])]),
              "commit": commit(), "date": now(), "machine": machine_info(),
              "measurements": [measure(config, args.steps, jit, variants=args.variants) for jit in (False, True)]}
    summarize(report)
    stem = f"{config['name']}_step_cost" + ("_quick" if args.quick else "")  # --config may be a path
    write_results(args.output, stem, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
