"""Growth on cached stage inputs (int16 cluster-id maps, float16 codes and features) against the uncached
LayerwiseTrainer path."""

import copy

import numpy as np
import pytest

import keras

import layerwise_keras as lk
from layerwise_keras.growth.diagnostics import StageWarning
from layerwise_keras.growth.names import stage_layer
from layerwise_keras.growth.cached import grow_cached
from layerwise_keras.growth.stage_inputs import StageInputs, epoch_orders
from layerwise_keras.runs.config import load_config
from layerwise_keras.runs.pipeline import grow, load_splits


def test_epoch_orders_match_from_arrays_shuffling():
    from layerwise_keras import datasets

    x = np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1)
    ds = datasets.from_arrays(x, np.zeros(50, int), batch_size=50, shuffle=True, seed=7)
    orders = epoch_orders(50, 7)
    for _ in range(3):  # successive epochs reshuffle identically
        images, _ = next(iter(ds))
        np.testing.assert_array_equal(images.numpy().ravel().astype(int), next(orders))


def test_cached_growth_gives_the_uncached_predictions():
    config = load_config("hierarchical_3level")
    config["dataset"].update(train=3000, val=300, test=500)
    splits = load_splits(config["dataset"], seed=0)
    model_a, figures_a = grow(config, splits, seed=0, verbose=0)
    cached = copy.deepcopy(config)
    cached["cache"] = True
    model_b, figures_b = grow(cached, splits, seed=0, verbose=0)

    # The same network comes out.
    assert [l.name for l in model_a.layers] == [l.name for l in model_b.layers]
    # Stage 1 trains on the images in both paths: same order, init and optimizer -> same losses.
    epochs_1 = config["stages"][0]["epochs"]
    np.testing.assert_allclose(figures_a["history"]["loss"][:epochs_1], figures_b["history"]["loss"][:epochs_1],
                               rtol=1e-3, atol=1e-6)
    assert figures_b["history"]["stage"] == figures_a["history"]["stage"]
    # Later stages agree up to float differences between the compiled in-graph assignment
    # and the eager one at near-ties: predictions and clusters are the same.
    pa = model_a.predict(splits["x_test"], verbose=0)
    pb = model_b.predict(splits["x_test"], verbose=0)
    assert (pa.argmax(-1) == pb.argmax(-1)).mean() >= 0.99
    assert figures_b["test_accuracy"] >= 0.98
    purity_a = [s["test_purity"] for s in figures_a["stages"][:-1]]
    purity_b = [s["test_purity"] for s in figures_b["stages"][:-1]]
    assert min(purity_b) >= 0.98 and np.allclose(purity_a, purity_b, atol=0.01)
    assert {"kmeans_inertia", "kmeans_counts", "stage_seconds"} <= set(figures_b["stages"][0])


# Stage kinds whose cache is float16: a whitened triangle code pooled by the next stage (paper order), the
# follow-up's stacking (cluster-first stages: pooled codes under a trainable head, handed-on bottlenecks), and a
# code-gated head (the code followed by its patch under a trainable CodeGate, handed on).
FLOAT_KINDS = {
    "triangle_code_pooled_by_the_next_stage": [
        lk.Stage(32, 3, clusters=24, assignment="triangle", whiten=1e-2, epochs=2),
        lk.Stage(32, 3, input_pool=3, epochs=3, readout="pooled", pool_size=1, bottleneck=16),
    ],
    "cluster_first_stack_with_bottleneck_handoff": [
        lk.Stage(None, 3, clusters=24, cluster="patches", assignment="triangle", whiten=1e-2, epochs=2,
                 readout="pooled", pool_size=3, bottleneck=16, handoff="bottleneck"),
        lk.Stage(None, 1, clusters=32, cluster="patches", assignment="nearest", q=3, whiten=1e-2, epochs=3,
                 readout="pooled", pool_size=1, bottleneck=8),
        lk.Stage(32, 3, epochs=3),
    ],
    "gated_head_handed_on": [  # the cache holds the code and the patch, K + 9 channels
        lk.Stage(None, 3, clusters=24, cluster="patches", assignment="triangle", whiten=1e-2, epochs=2,
                 readout="pooled", pool_size=3, bottleneck=16, handoff="bottleneck", gate=12),
        lk.Stage(32, 3, epochs=3),
    ],
}


@pytest.fixture(scope="module")
def splits():
    config = load_config("hierarchical_3level")
    config["dataset"].update(train=3000, val=300, test=500)
    return load_splits(config["dataset"], seed=0)


def _config(stages):
    config = load_config("hierarchical_3level")
    config["stages"] = [s.get_config() for s in stages]
    return config


@pytest.mark.parametrize("kind", sorted(FLOAT_KINDS))
def test_cached_growth_of_float_codes_gives_the_uncached_classifier(kind, splits):
    config = _config(FLOAT_KINDS[kind])
    model_a, figures_a = grow(config, splits, seed=0, verbose=0)
    model_b, figures_b = grow(dict(config, cache=True), splits, seed=0, verbose=0)

    assert [l.name for l in model_a.layers] == [l.name for l in model_b.layers]
    assert figures_b["history"]["stage"] == figures_a["history"]["stage"]
    seconds = figures_b["history"]["seconds"]  # the growth's own epoch clock (it runs outside one fit)
    assert len(seconds) == len(figures_b["history"]["stage"]) and (np.diff(seconds) > 0).all() and seconds[0] > 0
    # Every stage after the first trained on a float16 cache.
    dtypes = [s["cache_dtype"] for s in figures_b["stages"]]
    assert dtypes[1:] == ["float16"] * (len(dtypes) - 1), dtypes
    # Stage 1's first epoch sees the same inputs in both paths (the images, or its code computed once).
    np.testing.assert_allclose(figures_a["history"]["loss"][0], figures_b["history"]["loss"][0], rtol=1e-3)
    # Later, small float differences (float16 rounding; the eager against the compiled assignment) move the
    # k-means of later stages a little (measured <= 0.3 % in inertia) and the training paths with it, but
    # not what the network computes: both are perfect here (measured 1.000 and full agreement).
    for a, b in zip(figures_a["stages"][:-1], figures_b["stages"][:-1]):
        assert b["kmeans_inertia"] == pytest.approx(a["kmeans_inertia"], rel=0.02)
    pa = model_a.predict(splits["x_test"], verbose=0).argmax(-1)
    pb = model_b.predict(splits["x_test"], verbose=0).argmax(-1)
    assert (pa == pb).mean() >= 0.97, (pa == pb).mean()
    assert min(figures_a["test_accuracy"], figures_b["test_accuracy"]) >= 0.95


def test_a_stage_on_its_cached_input_predicts_what_the_model_predicts_on_images(splits):
    config = _config(FLOAT_KINDS["cluster_first_stack_with_bottleneck_handoff"])
    model, _ = grow(dict(config, cache=True), splits, seed=0, verbose=0)
    x = splits["x_test"]
    expected = model.predict(x, verbose=0)
    # Cut the grown model where a cache sits -- after stage 1's pooled triangle code (in front of its
    # handed-on BatchNorm + bottleneck) and after stage 2's multi-hot code (in front of stage 3) -- and run
    # the rest on the float16 cache of the part in front.
    for cut in ("stage1_readout_bn", "stage3_conv"):
        split = [l.name for l in model.layers].index(cut)
        cache = StageInputs(x).advance(model.layers[:split], batch_size=64)
        assert cache.data.dtype == np.float16
        rest = keras.Sequential([keras.Input(cache.shape)] + model.layers[split:])
        got = rest.predict(cache.decode(cache.data), verbose=0)
        assert (got.argmax(-1) == expected.argmax(-1)).mean() >= 0.99, cut
        # Where float16 rounding flips a later nearest-centroid choice at a near-tie, that example's logits
        # move; the rest agree (measured behind the stage-1 cut: 0.990 / 0.994 of the 500 test images agree,
        # top-1 1.000, oneDNN on / off with one thread; behind the stage-3 cut 1.000).
        same = np.abs(got - expected).max(-1) <= 0.02 * np.abs(expected).max()
        assert same.mean() >= 0.97, (cut, same.mean())
        # The network a stage trains on takes the float16 batches as stored and casts them itself: the same
        # logits as the float32 decoding (one graph, the same float32 values after the cast).
        np.testing.assert_allclose(cache.network(model.layers[split:]).predict(cache.data, verbose=0), got,
                                   rtol=1e-5, atol=1e-5)


def test_hard_codes_are_cached_as_int16_ids_and_decode_exactly(splits):
    stages = [lk.Stage(16, 3, clusters=24, epochs=1), lk.Stage(16, 3, epochs=1)]
    model, results, _ = grow_cached(stages, splits["x_train"], splits["y_train"], 4, "adam", 64, verbose=0)
    assert [r["cache_dtype"] for r in results] == ["float32", "int16"]
    x = splits["x_test"][:50]
    prefix = model.layers[:model.layers.index(stage_layer(model, 1, "assign")) + 1]
    cache = StageInputs(x).advance(prefix, batch_size=16)
    assert cache.data.shape == (50, 9, 9) and cache.shape == (9, 9, 24)
    # The ids are the nearest centroids the model's own (uncompiled) assignment picks. The cache is filled by an
    # XLA-compiled function, whose float rounding differs, so only where the two nearest centroids score
    # apart by more than that rounding must the ids agree exactly; at a near-tie either of the two is right.
    assign = prefix[-1]
    embeddings = keras.Sequential([keras.Input(x.shape[1:])] + prefix[:-1])(x)
    scores = keras.ops.convert_to_numpy(assign.scores(embeddings))
    top2 = np.sort(scores, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-4 * np.abs(top2).max()
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(cache.data[clear], scores.argmax(-1)[clear])
    picked = np.take_along_axis(scores, cache.data[..., None].astype(np.int64), -1)[..., 0]
    assert (picked >= top2[..., 0]).all()  # always one of the two nearest
    # The network a stage trains on the stored int16 ids one-hots them itself: the same logits as the layers on
    # the one-hot.
    rest = model.layers[len(prefix):]
    net = cache.network(rest)
    decoded = keras.Sequential([keras.Input(cache.shape)] + rest)
    np.testing.assert_allclose(net.predict(cache.data, verbose=0),
                               decoded.predict(cache.decode(cache.data), verbose=0), rtol=1e-5, atol=1e-5)


def test_a_fill_reads_the_layers_weights_of_the_moment():
    """The compiled fill of a list of layers is reused, so it must see weights set after it was first used."""
    layer = lk.ClusterAssignment(3)
    layer.build((None, 2))
    x = np.array([[[[0.0, 0.0]], [[1.0, 1.0]], [[2.0, 0.0]]]], np.float32)  # [1, 3, 1, 2]
    layer.set_centroids(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]], np.float32))
    np.testing.assert_array_equal(StageInputs(x).advance([layer], batch_size=1).data, [[[0], [1], [2]]])
    layer.set_centroids(np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]], np.float32))
    np.testing.assert_array_equal(StageInputs(x).advance([layer], batch_size=1).data, [[[1], [2], [0]]])


def test_values_beyond_float16_are_an_error_not_inf():
    x = np.full((4, 3, 3, 1), 1e5, np.float32)
    with pytest.raises(ValueError, match="beyond float16's range"):
        StageInputs(x).advance([keras.layers.Flatten()], batch_size=2)


def test_cached_and_uncached_growth_agree_on_learning_rates_budgets_and_hand_offs(splits):
    """Both growth paths read one budget rule (Stage.budget) and one schedule (Stage.learning_rate)."""
    stages = [lk.Stage(16, 3, clusters=12, epochs=3, schedule="cosine"),
              lk.Stage(16, 3, clusters=8, steps=70, schedule="step"),
              lk.Stage(16, 3, epochs=2)]
    x, y = splits["x_train"][:1000], splits["y_train"][:1000]
    rates = []
    recorder = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: rates.append(logs["learning_rate"]))
    trainer = lk.LayerwiseTrainer(stages, splits["num_classes"], kmeans_data=x, verbose=0, steps_per_epoch=10)
    model_a = lk.input_model(x.shape[1:])
    model_a.compile(keras.optimizers.Adam(0.004), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model_a.fit(x, y, batch_size=100, epochs=trainer.total_epochs, callbacks=[trainer, recorder], verbose=0)
    model_b, _, history = grow_cached(stages, x, y, splits["num_classes"],
                                      {"class_name": "Adam", "config": {"learning_rate": 0.004}}, 100, verbose=0)
    assert trainer.stage_budgets() == [3, 7, 2]
    assert history["stage"] == [1] * 3 + [2] * 7 + [3] * 2
    np.testing.assert_allclose(history["learning_rate"], rates, rtol=1e-6)
    expected = [stages[0].learning_rate(0.004, e, 3) for e in range(3)] + [
        stages[1].learning_rate(0.004, e, 7) for e in range(7)] + [0.004, 0.004]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    assert [(l.name, tuple(l.output.shape)) for l in model_a.layers] == [
        (l.name, tuple(l.output.shape)) for l in model_b.layers]


def test_cached_stage_results_carry_the_trainers_budget_and_diagnosis(splits):
    """The same stage-result keys as the LayerwiseTrainer's: epochs, steps and warnings (one diagnose for both).

    The warnings name `grow_cached`, not the trainer.
    """
    x, y = splits["x_train"][:200], splits["y_train"][:200]
    stages = [lk.Stage(8, 3, clusters=64, epochs=1), lk.Stage(8, 3, epochs=1)]  # 200 images: a starved stage
    with pytest.warns(StageWarning):
        _, results, _ = grow_cached(stages, x, y, splits["num_classes"],
                                    {"class_name": "SGD", "config": {"learning_rate": 0.001}}, 100, verbose=0)
    assert [(r["epochs"], r["steps"]) for r in results] == [(1, 2), (1, 2)]
    messages = [m for r in results for m in r["warnings"]]
    assert any("near chance" in m or "clusters" in m for m in messages)
    assert all(m.startswith("grow_cached: ") for m in messages), messages  # named after the path that grew it


def test_an_augmented_cache_is_the_layers_output_on_augmented_images():
    from layerwise_keras.datasets import augment_batch

    x = np.random.default_rng(0).normal(size=(40, 8, 8, 3)).astype(np.float32)
    layers = [keras.layers.Conv2D(4, 3, kernel_initializer=keras.initializers.GlorotUniform(seed=1))]
    cache = StageInputs(x).advance(layers, batch_size=64, rng=np.random.default_rng(5))  # one batch of all 40
    expected = keras.ops.convert_to_numpy(layers[0](augment_batch(x, np.random.default_rng(5))))
    np.testing.assert_allclose(cache.decode(cache.data), expected, rtol=2e-3, atol=2e-3)  # float16 storage
    assert not np.allclose(cache.decode(cache.data), keras.ops.convert_to_numpy(layers[0](x)), atol=0.1)
    ids = StageInputs(np.zeros((4, 3, 3), np.int16), depth=5)  # an id map is not an image
    with pytest.raises(ValueError, match="only images"):
        ids.advance([keras.layers.Flatten()], batch_size=8, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs the layers"):
        StageInputs(x).advance([], batch_size=8, rng=np.random.default_rng(0))


@pytest.mark.filterwarnings("ignore::layerwise_keras.growth.diagnostics.StageWarning")  # 18 steps a stage
@pytest.mark.parametrize("variants", [1, 2])
def test_augmented_cached_growth_trains_later_stages_on_its_copies_in_turn(splits, monkeypatch, variants):
    """Stage 1 (the images) gets fresh augmented batches every epoch; later stages cycle through their copies."""
    from layerwise_keras.datasets import ArrayBatches
    from layerwise_keras.growth import cached, stage_inputs

    x, y = splits["x_train"][:600], splits["y_train"][:600]
    stages = [lk.Stage(None, 3, clusters=16, cluster="patches", assignment="triangle", readout="pooled",
                       pool_size=3, bottleneck=8, handoff="bottleneck", gate=4, epochs=2),
              lk.Stage(8, 1, clusters=8, epochs=3), lk.Stage(8, 3, epochs=3)]
    seen = []
    original = stage_inputs.StageBatches.__init__

    def record(self, inputs, labels, batch_size, order=None):
        if order is not None:  # training batches (validation has no order)
            seen.append(id(inputs.data))
        original(self, inputs, labels, batch_size, order)

    monkeypatch.setattr(stage_inputs.StageBatches, "__init__", record)
    epochs_of_images = []
    monkeypatch.setattr(cached, "ArrayBatches", lambda *a, **k: epochs_of_images.append(k) or ArrayBatches(*a, **k))
    model, results, history = grow_cached(stages, x, y, splits["num_classes"], "adam", 100, x_val=splits["x_val"],
                                          y_val=splits["y_val"], verbose=0, augment_variants=variants)
    assert [(k["augment"], k["epoch"]) for k in epochs_of_images] == [(True, 0), (True, 1)]
    assert history["stage"] == [1, 1, 2, 2, 2, 3, 3, 3]
    assert np.isfinite(history["loss"]).all() and len(history["val_accuracy"]) == 8
    assert [r["cache_variants"] for r in results] == [0, variants, variants]
    # Stage 2 trains on its copies in turn (epoch e on copy e mod V), then stage 3 on its own.
    stage2, stage3 = seen[:3], seen[3:]
    assert stage2 == [stage2[e % variants] for e in range(3)] and len(set(stage2)) == variants
    assert stage3 == [stage3[e % variants] for e in range(3)] and not set(stage2) & set(stage3)
    per_copy = results[1]["cache_bytes"] // variants
    assert per_copy == 600 * int(np.prod(model.get_layer("stage2_conv").input.shape[1:])) * 2  # float16
    predictions = model.predict(splits["x_test"][:50], verbose=0)
    assert predictions.shape == (50, splits["num_classes"]) and np.isfinite(predictions).all()


def test_augment_variants_must_be_a_positive_integer(splits):
    x, y = splits["x_train"][:100], splits["y_train"][:100]
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="augment_variants"):
            grow_cached([lk.Stage(8, 3)], x, y, splits["num_classes"], "adam", 50, verbose=0, augment_variants=bad)


class _Killed(Exception):
    pass


def _resume_stages():
    return [lk.Stage(None, 3, clusters=16, cluster="patches", assignment="triangle", readout="pooled",
                     pool_size=3, bottleneck=8, handoff="bottleneck", epochs=2, schedule="cosine"),
            lk.Stage(8, 1, clusters=8, epochs=3, schedule="cosine"), lk.Stage(8, 3, epochs=2)]


@pytest.mark.filterwarnings("ignore::layerwise_keras.growth.diagnostics.StageWarning")  # few steps a stage
@pytest.mark.parametrize("killed_after", [2, 4, 6])  # stage 1's last epoch, mid stage 2, mid stage 3
def test_a_killed_cached_growth_resumes_from_its_checkpoint(splits, tmp_path, monkeypatch, killed_after):
    """Killed right after the checkpoint of epoch `killed_after`, resumed: the growth an uninterrupted run grows."""
    from layerwise_keras.growth import cached

    x, y = splits["x_train"][:600], splits["y_train"][:600]
    kwargs = dict(x_val=splits["x_val"], y_val=splits["y_val"], verbose=0, augment_variants=2, seed=3,
                  config={"run": "resume test"})
    args = (x, y, splits["num_classes"], {"class_name": "Adam", "config": {"learning_rate": 0.003}}, 100)
    keras.utils.set_random_seed(3)
    model_a, results_a, history_a = grow_cached(_resume_stages(), *args, checkpoint_dir=str(tmp_path / "a"), **kwargs)
    write = cached.write_checkpoint

    def write_then_die(folder, model, state, arrays):
        write(folder, model, state, arrays)
        if state["epochs_done"] == killed_after:
            raise _Killed()

    monkeypatch.setattr(cached, "write_checkpoint", write_then_die)
    keras.utils.set_random_seed(3)
    with pytest.raises(_Killed):
        grow_cached(_resume_stages(), *args, checkpoint_dir=str(tmp_path / "b"), **kwargs)
    monkeypatch.setattr(cached, "write_checkpoint", write)
    model_b, results_b, history_b = grow_cached(_resume_stages(), *args, checkpoint_dir=str(tmp_path / "b"),
                                                resume=True, **kwargs)
    assert history_b["stage"] == history_a["stage"] == [1, 1, 2, 2, 2, 3, 3]
    np.testing.assert_allclose(history_b["learning_rate"], history_a["learning_rate"], rtol=1e-6)
    # Up to the kill the histories are the first run's own; after it, the resumed run's: the same computation
    # (same process and machine), but that stage 3's input is cached again from the images in one pass, not
    # from stage 2's float16 cache, so its float16 rounding may differ.
    # (measured: equal on the development machine, all three kill points)
    np.testing.assert_allclose(history_b["loss"], history_a["loss"], rtol=0.02 if killed_after > 5 else 1e-3)
    assert [r["stage"] for r in results_b] == [1, 2, 3]
    assert [r["cache_variants"] for r in results_b] == [0, 2, 2]
    assert results_b[0]["kmeans_inertia"] == pytest.approx(results_a[0]["kmeans_inertia"], rel=1e-6)
    assert results_b[1]["kmeans_inertia"] == pytest.approx(results_a[1]["kmeans_inertia"], rel=1e-3)
    assert (np.diff(history_b["seconds"]) > 0).all()  # the clock continues from the checkpoint's time
    same = (model_a.predict(splits["x_test"], verbose=0).argmax(-1)
            == model_b.predict(splits["x_test"], verbose=0).argmax(-1)).mean()
    assert same >= 0.95


def test_resuming_a_cached_growth_refuses_another_growths_checkpoint(splits, tmp_path):
    x, y = splits["x_train"][:200], splits["y_train"][:200]
    stages = [lk.Stage(8, 3, clusters=8, epochs=1), lk.Stage(8, 3, epochs=1)]
    folder = str(tmp_path / "ckpt")
    with pytest.warns(StageWarning):
        grow_cached(stages, x, y, splits["num_classes"], "adam", 100, verbose=0, checkpoint_dir=folder)
    with pytest.raises(ValueError, match="belongs to a growth with other"):
        grow_cached(stages, x, y, splits["num_classes"], "adam", 100, verbose=0, checkpoint_dir=folder,
                    resume=True, seed=1)
    with pytest.raises(ValueError, match="resume=True needs the checkpoint_dir"):
        grow_cached(stages, x, y, splits["num_classes"], "adam", 100, verbose=0, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        grow_cached(stages, x, y, splits["num_classes"], "adam", 100, verbose=0, resume=True,
                    checkpoint_dir=str(tmp_path / "empty"))
