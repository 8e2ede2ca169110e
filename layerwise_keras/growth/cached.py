"""Layerwise growth on cached stage inputs (TensorFlow-only, through `growth.stage_inputs`).

Frozen layers never change, so everything a stage's trainable layers see --
the frozen stages before it, its own input pooling and, for a cluster-first
stage (`Stage(cluster="patches")`), its frozen patch code and the head's
average pooling -- can be computed once and kept compactly
(`growth.stage_inputs.StageInputs`: int16 cluster ids or float16), instead
of running it again in every epoch. `grow_cached` grows the same
`keras.Sequential` the `LayerwiseTrainer` grows, with the same builder steps
(`append_stage`, `freeze_stage`, `append_readout`, `drop_readout`), and
trains each stage's trainable layers alone (a `keras.Sequential` sharing
them) on the cached output of the frozen layers in front of them.

It follows the uncached path otherwise: the same initialisers, a fresh
optimiser of the same config per stage, the same per-epoch shuffle order as
`datasets.from_arrays(..., shuffle=True, seed=seed)` iterated once per epoch,
the same k-means streams (over the cached inputs). Stage 1 of a paper-order
growth trains on the images themselves, so its losses are the uncached ones;
later stages differ by the float16 rounding and by float differences between
the compiled function that fills a cache and the training graph, which can
move a later k-means run a little (tests/test_cached.py bounds both).

Data augmentation (`augment_variants=V`): augmented images change every
epoch, so nothing computed from them stays the same. Stage 1, whose input is
the images, then trains its frozen and trainable layers together on freshly
augmented batches every epoch (`datasets.ArrayBatches(augment=True)`), as
the `LayerwiseTrainer` does; every later stage's input -- everything frozen
in front of it -- is cached for V augmented copies of the training images,
and epoch e trains on copy e mod V (its own frozen code runs per batch, as
it is cheap after stage 1's pooling and a code of K channels per position
would not fit in memory). V copies cost V passes of the frozen front instead
of one per epoch of every later stage; fewer copies than epochs means a
stage sees each augmented image more than once. k-means and validation use
the un-augmented images, as in the trainer.

With `checkpoint_dir`, the growth is checkpointed after every epoch and
`resume=True` continues it (`growth.checkpoint` holds the files).

Not covered: convergence budgets (`Stage(patience=...)`).
"""

import copy
import json
import time

import keras
import numpy as np

from layerwise_keras.datasets.batches import ArrayBatches
from layerwise_keras.growth.builder import check_stages, input_model
from layerwise_keras.growth.checkpoint import OPTIMIZER_FILE, read_checkpoint, write_checkpoint
from layerwise_keras.growth.lifecycle import HISTORY_KEYS, begin_stage, end_stage, report_stage
from layerwise_keras.growth.names import CACHED
from layerwise_keras.growth.stage_clustering import cluster_stage

if keras.backend.backend() != "tensorflow":  # before stage_inputs' import, which would only say "no module tensorflow"
    raise ImportError(f"layerwise_keras.growth.cached (grow_cached) grows on cached stage inputs, which are "
                      f"TensorFlow-only (growth.stage_inputs), and this is Keras' {keras.backend.backend()} backend: "
                      "grow with the LayerwiseTrainer callback in model.fit, or use the tensorflow backend.")

from layerwise_keras.growth.stage_inputs import (StageBatches, StageInputs, embedding_stream,  # noqa: E402
                                                  epoch_orders, first_trainable)


def grow_cached(stages, x_train, y_train, num_classes, optimizer, batch_size, x_val=None, y_val=None,
                seed=0, verbose=1, kmeans_batch_size=256, name="layerwise", augment_variants=None,
                checkpoint_dir=None, resume=False, config=None, checkpoint_every=1):
    """Grows a network stage by stage, each stage training on its cached input.

    Args:
        stages: list of `Stage` (or config dicts), any kinds but
            convergence budgets (`patience`).
        x_train, y_train: training images `[n, H, W, C]` and int labels.
        num_classes: int, the number of labels.
        optimizer: an optimizer config or identifier (`keras.optimizers.get`);
            every stage gets a fresh instance.
        batch_size: int.
        x_val, y_val: optional validation data, evaluated after every epoch.
        seed: int; the caller should also call `keras.utils.set_random_seed`.
        verbose: Keras verbosity for each stage's `fit`.
        kmeans_batch_size: examples per batch when caching and embedding for k-means.
        name: the grown model's name.
        augment_variants: int V >= 1 to train on augmented images (random
            crop + flip): stage 1 on fresh batches every epoch, each later
            stage on V cached augmented copies of its input, in turn (see
            the module docstring); None (default): no augmentation.
        checkpoint_dir: a folder to checkpoint the growth into after every
            epoch (`checkpoint.write_checkpoint`: the model, the stage's
            optimizer state and the progress), or None.
        resume: continue from the latest checkpoint in `checkpoint_dir`,
            which must come from a growth with the same stages, data sizes,
            optimizer, batch size, seed, `augment_variants` and `config`.
            Stage inputs are cached again from the saved model; a later
            stage's may then differ from the first run's by float16 rounding.
        config: an optional JSON-able dict stored with every checkpoint (a
            run's configuration); `resume` refuses a checkpoint of another.
        checkpoint_every: int >= 1, checkpoint after every this many epochs
            of the growth and after every stage's last epoch.

    Returns:
        `(model, stage_results, history)`: the grown `keras.Sequential` (the
        same layers as `LayerwiseTrainer` grows), one dict per stage like
        `LayerwiseTrainer.stage_results` (plus `cache_bytes` and
        `cache_dtype`, what the stage trained on, and `cache_variants`, the
        augmented copies of it), and per-epoch lists
        `loss`, `accuracy`, `val_loss`, `val_accuracy`, `stage`,
        `learning_rate` (each stage follows its `Stage.schedule`, as in the
        `LayerwiseTrainer`) and `seconds` (wall time since the growth began,
        caching and k-means included).

    Example:

    `x`, `y`: 128 images 27x27x1 and their labels (10 classes).

    >>> from layerwise_keras.growth.stage import Stage
    >>> model, results, history = grow_cached([Stage(8, 3, clusters=8), Stage(8, 3)], x, y, 10,
    ...                                       {"class_name": "Adam", "config": {}}, 32, verbose=0)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv', 'stage1_assign', 'stage2_conv', 'stage2_readout_flatten', 'stage2_readout']
    >>> history["stage"], [r["cache_dtype"] for r in results]
    ([1, 2], ['float32', 'int16'])
    """
    growth = _CachedGrowth(stages, x_train, y_train, num_classes, optimizer, batch_size, x_val, y_val, seed,
                           verbose, kmeans_batch_size, augment_variants, checkpoint_dir, config, checkpoint_every)
    return growth.run(resume, name)


class _CachedGrowth:
    """One `grow_cached` call: its arguments checked, its progress, one method per phase of a stage."""

    def __init__(self, stages, x_train, y_train, num_classes, optimizer, batch_size, x_val, y_val, seed, verbose,
                 kmeans_batch_size, augment_variants, checkpoint_dir, config, checkpoint_every):
        self.stages = check_stages(stages, num_classes, owner=CACHED)
        for n, stage in enumerate(self.stages, start=1):
            if stage.patience is not None:
                raise ValueError(
                    f"grow_cached: stage {n} stops on convergence (patience={stage.patience}); the cached path "
                    "trains fixed budgets (epochs or steps) only. Use the uncached LayerwiseTrainer path, or drop "
                    "patience.")
        if augment_variants is not None and (isinstance(augment_variants, bool)
                                             or not isinstance(augment_variants, int) or augment_variants < 1):
            raise ValueError(
                f"grow_cached: augment_variants must be an integer >= 1 or None, got {augment_variants!r}.")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"grow_cached: checkpoint_every must be an integer >= 1, got {checkpoint_every!r}.")
        self.num_classes, self.optimizer, self.batch_size = num_classes, optimizer, int(batch_size)
        self.seed, self.verbose, self.kmeans_batch_size = seed, verbose, kmeans_batch_size
        self.variants, self.checkpoint_dir, self.checkpoint_every = augment_variants, checkpoint_dir, checkpoint_every
        self.config = config
        self.y_train, self.y_val = np.asarray(y_train), y_val
        self.images = StageInputs(np.asarray(x_train, dtype=np.float32))
        self.val_images = None if x_val is None else StageInputs(np.asarray(x_val, dtype=np.float32))
        self.steps_per_epoch = -(-len(self.y_train) // self.batch_size)
        self.orders = epoch_orders(len(self.y_train), seed)
        self.signature = {
            "stages": [stage.get_config() for stage in self.stages], "num_classes": int(num_classes),
            "optimizer": optimizer if isinstance(optimizer, (str, dict)) else keras.optimizers.serialize(optimizer),
            "batch_size": self.batch_size, "seed": int(seed), "augment_variants": augment_variants,
            "train": len(self.y_train), "val": None if x_val is None else len(x_val)}

    def run(self, resume, name):
        """Grows every stage (from the checkpoint with `resume`); returns `(model, stage_results, history)`."""
        if resume and self.checkpoint_dir is None:
            raise ValueError("grow_cached: resume=True needs the checkpoint_dir to resume from.")
        # The stage input (cached output of everything frozen so far) and, augmented, its copies.
        self.train, self.val, self.copies = self.images, self.val_images, []
        state = self._restore() if resume else None
        if state is None:
            self.model, first, self.results = input_model(self.images.shape, name=name), 0, []
            self.history, self.orders_used = {k: [] for k in HISTORY_KEYS + ("seconds",)}, 0
        else:
            first = state["stage_index"]
        self.began = time.perf_counter() - (state["seconds"] if state else 0.0)
        for index in range(first, len(self.stages)):
            self._stage(index, state if index == first else None)
        return self.model, self.results, self.history

    def _restore(self):
        """Loads the latest checkpoint; caches the input of the stage it was training again. Returns its state."""
        self.model, state = _read_saved(self.checkpoint_dir, self.signature, self.config)
        self.results, self.history, self.orders_used = state["stage_results"], state["history"], state["orders_used"]
        for _ in range(self.orders_used):  # the epoch orders the epochs before the checkpoint drew
            next(self.orders)
        if state["begin"]:
            front = self.model.layers[:state["begin"]]
            self.train = self.images.advance(front, self.kmeans_batch_size)
            self.val = None if self.val_images is None else self.val_images.advance(front, self.kmeans_batch_size)
            if self.variants:
                self.copies = [self.images.advance(front, self.kmeans_batch_size, _copy_rng(self.seed, v))
                               for v in range(self.variants)]
        return state

    def _cluster(self, stage, n, inputs, start, layer):
        """k-means of `layer`'s output, computed from the cached input of the layers from `start` on."""
        layers = self.model.layers[start:self.model.layers.index(layer) + 1]
        stream = embedding_stream(layers, inputs, self.kmeans_batch_size, n)
        return cluster_stage(stage, n, stream, self.seed, verbose=int(bool(self.verbose)), owner=CACHED)

    def _stage(self, index, state):
        """Begins (or resumes), trains and ends stage `index + 1`; hands its output on to the next stage."""
        stage, n, model = self.stages[index], index + 1, self.model
        if state is not None:  # begun (and clustered, if cluster-first) before the checkpoint
            progress = {key: state[key] for key in ("begin", "begun")}
            progress.update(result=dict(state["result"], resumed_from_epoch=state["epochs_done"]),  # of the growth
                            done=state["stage_epochs_done"], start=time.perf_counter() - state["stage_seconds"])
        else:
            begin = len(model.layers)
            progress = {"begin": begin, "result": {"stage": n}, "done": 0, "start": time.perf_counter()}
            progress["begun"] = begin_stage(model, stage, n, self.num_classes,
                                            lambda layer: self._cluster(stage, n, self.train, begin, layer),
                                            self.seed, owner=CACHED)
            progress["result"].update(progress["begun"] or {})
        begin, result = progress["begin"], progress["result"]
        progress["budget"] = budget = stage.budget(self.steps_per_epoch)
        # Augmented, a stage trains its own frozen layers too: their output changes with every augmented batch.
        split = begin if self.variants else first_trainable(model, begin)
        base, val_base = self.train, self.val
        train = base.advance(model.layers[begin:split], self.kmeans_batch_size)
        val = None if val_base is None else val_base.advance(model.layers[begin:split], self.kmeans_batch_size)
        cached = self.copies if self.variants and index else [train]
        result.update(cache_bytes=sum(c.nbytes for c in cached), cache_dtype=str(train.data.dtype),
                      cache_variants=len(self.copies) if self.variants and index else 0)
        self._train(index, train, cached, val, split, progress, state)
        if index < len(self.stages) - 1:
            # A paper-order stage clusters its embeddings from the cache it trained on.
            figures = end_stage(model, stage, n, lambda layer: self._cluster(stage, n, train, split, layer),
                                progress["begun"])
            result.update(figures or {})
            self._hand_on(index, begin, split, train, val, base, val_base)
        result["stage_seconds"] = time.perf_counter() - progress["start"]
        result.update(epochs=budget, steps=budget * self.steps_per_epoch)
        # The trainer's diagnosis, its warnings pointing at grow_cached's caller (_stage <- run <- grow_cached).
        report_stage(result, n, self.num_classes, self.results[-1] if self.results else None, stacklevel=5,
                     owner=CACHED)
        self.results.append(result)

    def _train(self, index, train, cached, val, split, progress, state):
        """Trains stage `index + 1`'s layers from `split` on for the rest of its budget, checkpointing."""
        stage, n, history = self.stages[index], index + 1, self.history
        net = train.network(self.model.layers[split:], name=f"stage{n}_net")
        net.compile(optimizer=keras.optimizers.get(copy.deepcopy(self.optimizer)),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        initial = float(keras.ops.convert_to_numpy(net.optimizer.learning_rate))  # the schedule's start
        if state is not None and state["optimizer_weights"] is not None:  # (the learning rate among them)
            _restore_optimizer(net.optimizer, net.trainable_variables, state["optimizer_weights"])
        val_batches = None if val is None else StageBatches(val, self.y_val, self.batch_size)
        budget = progress["budget"]
        for done in range(progress["done"], budget):
            if stage.schedule is not None:  # as the LayerwiseTrainer does: the stage's schedule, epoch by epoch
                net.optimizer.learning_rate = stage.learning_rate(initial, done, budget)
            history["learning_rate"].append(float(keras.ops.convert_to_numpy(net.optimizer.learning_rate)))
            if self.variants and not index:  # the images themselves, augmented afresh
                batches = ArrayBatches(train.data, self.y_train, self.batch_size, augment=True, seed=self.seed,
                                       epoch=done)
            else:
                batches = StageBatches(cached[done % len(cached)], self.y_train, self.batch_size, next(self.orders))
                self.orders_used += 1
            fit = net.fit(batches, epochs=1, validation_data=val_batches, verbose=self.verbose, shuffle=False)
            logs = {k: float(v[-1]) for k, v in fit.history.items()}
            if not np.isfinite(logs["loss"]):
                raise ValueError(f"grow_cached: the training loss is {logs['loss']} at stage {n}.")
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                if key in logs:
                    history[key].append(logs[key])
            history["stage"].append(n)
            history["seconds"].append(time.perf_counter() - self.began)
            progress["result"].update(logs)
            if self.checkpoint_dir is not None and (len(history["stage"]) % self.checkpoint_every == 0
                                                    or done + 1 == budget):
                self._checkpoint(net, index, done + 1, progress)

    def _checkpoint(self, net, index, stage_epochs_done, progress):
        state = {"epochs_done": len(self.history["stage"]), "stage_results": self.results, "history": self.history,
                 "config": self.config, "growth": self.signature, "stage_index": index,
                 "stage_epochs_done": stage_epochs_done, "begin": progress["begin"], "begun": progress["begun"],
                 "result": progress["result"], "orders_used": self.orders_used,
                 "seconds": self.history["seconds"][-1], "stage_seconds": time.perf_counter() - progress["start"]}
        weights = [keras.ops.convert_to_numpy(v) for v in net.optimizer.variables]
        write_checkpoint(self.checkpoint_dir, self.model, state, {OPTIMIZER_FILE: weights})

    def _hand_on(self, index, begin, split, train, val, base, val_base):
        """Caches the next stage's input (and, augmented, its copies) once stage `index + 1` has ended."""
        layers, batch_size, n = self.model.layers, self.kmeans_batch_size, index + 1
        # From the cache this stage trained on when its layers are all still there, else (a dropped pooled
        # head) from this stage's input.
        if len(layers) >= split:
            self.train = train.advance(layers[split:], batch_size)
            self.val = None if val is None else val.advance(layers[split:], batch_size)
        else:
            self.train = base.advance(layers[begin:], batch_size)
            self.val = None if val_base is None else val_base.advance(layers[begin:], batch_size)
        if self.variants:  # the next stage's augmented copies: from the images, or from this stage's copies
            filled = time.perf_counter()
            _say(self.verbose, f"stage {n + 1}: caching its input for {self.variants} augmented copies of the "
                               f"{len(self.y_train)} training images ...")
            self.copies = [(base.advance(layers[begin:], batch_size, _copy_rng(self.seed, v)) if not index
                            else self.copies[v].advance(layers[begin:], batch_size)) for v in range(self.variants)]
            mib = sum(c.nbytes for c in self.copies) / 2**20
            _say(self.verbose, f"stage {n + 1}: {self.variants} copies cached ({mib:.0f} MiB) in "
                               f"{time.perf_counter() - filled:.1f} s.")


def _say(verbose, message):
    if verbose:
        print(f"grow_cached: {message}", flush=True)


def _copy_rng(seed, variant):
    """The augmentation draws of augmented copy `variant` of every cached stage input."""
    return np.random.default_rng([int(seed), 7919, int(variant)])


def _read_saved(folder, growth, config):
    """The latest checkpoint of a cached growth in `folder` as `(model, state)`, checked against this growth."""
    model, state = read_checkpoint(folder)
    if "growth" not in state:
        raise ValueError(f"the checkpoint in {folder} is not a cached growth's (grow_cached); resume it with the "
                         "path that wrote it.")
    if state["growth"] != json.loads(json.dumps(growth)) or state["config"] != json.loads(json.dumps(config)):
        raise ValueError(f"the checkpoint in {folder} belongs to a growth with other stages, data sizes, optimizer, "
                         "seed or configuration; resume with the same ones or start over in a new folder.")
    return model, state


def _restore_optimizer(optimizer, variables, weights):
    """Builds `optimizer` for `variables` and sets its state to the saved `weights`."""
    optimizer.build(variables)
    if len(optimizer.variables) != len(weights):
        raise ValueError(f"grow_cached: the checkpoint holds {len(weights)} optimizer variables, the stage's "
                         f"optimizer has {len(optimizer.variables)}; the checkpoint belongs to another growth.")
    for variable, value in zip(optimizer.variables, weights):
        variable.assign(value)
