"""The CIFAR stage kinds: ZCA whitening before k-means, q-nearest multi-hot codes, pooled heads, schedules.

Each is checked against a NumPy reference, then as part of a grown model:
`.keras` round trip, portable form, SavedModel (<= 1e-5), LiteRT and ONNX
(<= 1e-4) with every top-1 class the same, and a real growth on the
generative model.
"""

import numpy as np
import pytest

import keras

import layerwise_keras as lk
from helpers import assert_export_parity
from layerwise_keras import export
from layerwise_keras.clustering.whitening import WhitenedStream, fit_zca
from layerwise_keras.growth.builder import grown_model
from layerwise_keras.growth.names import stage_layer
from layerwise_keras.growth.codes import nearest_mask
from layerwise_keras.growth.layers import ClusterAssignment


def _reference_zca(x, epsilon):
    x = np.asarray(x, "float64")
    cov = np.cov(x, rowvar=False)
    lam, v = np.linalg.eigh(cov)
    lam = np.clip(lam, 0, None)
    return x.mean(0), v @ np.diag(1 / np.sqrt(lam + epsilon * lam.mean())) @ v.T


def _correlated(n=4000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * np.array([5.0, 2.0, 1.0, 0.5, 0.1, 0.01])[:, None]
    return (rng.normal(size=(n, d)) @ mix + rng.normal(size=d) * 3).astype("float32")


class _Chunks:
    def __init__(self, x, size):
        self.x, self.size = x, size

    def as_numpy_iterator(self):
        for start in range(0, len(self.x), self.size):
            yield self.x[start:start + self.size]


# ---------------------------------------------------------------------------
# whitening
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [1e-3, 1e-1])
def test_fit_zca_matches_numpy_and_does_not_depend_on_chunking(epsilon):
    x = _correlated()
    mean, matrix = _reference_zca(x, epsilon)
    whole = fit_zca(x, epsilon)
    chunked = fit_zca(_Chunks(x, 333), epsilon)
    for zca in (whole, chunked):
        np.testing.assert_allclose(zca.mean, mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(zca.matrix, matrix, rtol=1e-3, atol=1e-4 * np.abs(matrix).max())
        assert zca.n_points == len(x)
    # ZCA is symmetric and whitens: the covariance of the output is V diag(lam / (lam + eps mean)) V^T.
    np.testing.assert_allclose(whole.matrix, whole.matrix.T, atol=1e-5 * np.abs(whole.matrix).max())
    z = whole.transform(x)
    lam = np.linalg.eigvalsh(np.cov(z, rowvar=False))
    ref = np.sort(whole.eigenvalues / (whole.eigenvalues + epsilon * whole.eigenvalues.mean()))
    np.testing.assert_allclose(np.sort(lam), ref, rtol=1e-2, atol=1e-3)
    # The four strong directions (variance >= 0.25 against a mean of ~6) come out at unit variance.
    assert (lam > 0.95).sum() >= (4 if epsilon == 1e-3 else 2)


def test_whitened_stream_yields_transformed_chunks():
    x = _correlated(n=500)
    zca = fit_zca(x, 1e-2)
    out = np.concatenate(list(WhitenedStream(_Chunks(x, 128), zca).as_numpy_iterator()))
    np.testing.assert_allclose(out, (x - zca.mean) @ zca.matrix, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((10, 3)), "zero variance"),
    (np.ones((1, 3)), "at least 2"),
    (np.full((5, 3), np.nan), "NaN or Inf"),
    (np.ones(5), r"\[points, dim\]"),
])
def test_fit_zca_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        fit_zca(bad, 1e-2)


@pytest.mark.parametrize("epsilon", [0, -1, True, "1e-2"])
def test_fit_zca_bad_epsilon(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        fit_zca(_correlated(n=10), epsilon)


def test_assignment_layer_whitens_before_the_nearest_centroid():
    x = _correlated(n=300)
    zca = fit_zca(x, 1e-2)
    z = zca.transform(x)
    rng = np.random.default_rng(1)
    centroids = z[rng.choice(len(z), 7, replace=False)]
    layer = ClusterAssignment(7, whiten=True)
    layer.build((None, x.shape[1]))
    layer.set_whitening(zca.mean, zca.matrix)
    layer.set_centroids(centroids)
    got = np.asarray(layer(x))
    nearest = ((z[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(-1)
    np.testing.assert_array_equal(got, np.eye(7, dtype="float32")[nearest])
    # Without whitening, the raw nearest centroid is another one for many points: the weights matter.
    raw = ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(-1)
    assert (raw != nearest).mean() > 0.1


def test_set_whitening_checks_its_input():
    layer = ClusterAssignment(3, whiten=True)
    layer.build((None, 4))
    with pytest.raises(ValueError, match="shape"):
        layer.set_whitening(np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer.set_whitening(np.zeros(4), np.full((4, 4), np.inf))
    plain = ClusterAssignment(3)
    plain.build((None, 4))
    with pytest.raises(ValueError, match="whiten=False"):
        plain.set_whitening(np.zeros(4), np.eye(4))


# ---------------------------------------------------------------------------
# q-nearest multi-hot
# ---------------------------------------------------------------------------


def _reference_mask(scores, q):
    """The q highest scores per row; ties toward the lower index (a stable sort of -scores)."""
    flat = scores.reshape(-1, scores.shape[-1])
    out = np.zeros_like(flat)
    for row, s in zip(out, flat):
        row[np.argsort(-s, kind="stable")[:q]] = 1
    return out.reshape(scores.shape)


@pytest.mark.parametrize("q", [1, 2, 3, 5, 8])
def test_nearest_mask_matches_numpy_including_ties(q):
    rng = np.random.default_rng(q)
    # Integer scores from a small range: most rows have ties across the q-th place.
    scores = rng.integers(0, 4, size=(6, 5, 8)).astype("float32")
    scores[0, 0] = 1.0  # all tied
    got = np.asarray(nearest_mask(scores, q))
    np.testing.assert_array_equal(got, _reference_mask(scores, q))
    assert (got.sum(-1) == q).all()
    if q == 1:  # the hard assignment, bit for bit
        np.testing.assert_array_equal(got, np.eye(8, dtype="float32")[scores.argmax(-1)])


def test_nearest_with_q_one_is_the_hard_layer():
    x = _correlated(n=200)
    centroids = x[:6]
    layers = [ClusterAssignment(6, mode) for mode in ("hard", "nearest")]
    for layer in layers:
        layer.build((None, 6))
        layer.set_centroids(centroids)
    np.testing.assert_array_equal(np.asarray(layers[0](x)), np.asarray(layers[1](x)))


@pytest.mark.parametrize("kwargs, match", [
    ({"q": 0}, "q must be"), ({"q": 7}, "q must be"), ({"q": 2.5}, "q must be"),
    ({"q": 2, "assignment": "hard"}, "needs assignment='nearest'"), ({"whiten": 1}, "whiten must be"),
])
def test_assignment_layer_bad_q_or_whiten(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClusterAssignment(6, **{"assignment": "nearest", **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    ({"q": 2}, "needs assignment='nearest'"), ({"assignment": "nearest", "q": 9}, "more than the 8"),
    ({"whiten": 0.0}, "whiten must be"), ({"whiten": True}, "whiten must be"),
    ({"readout": "pooled", "bottleneck": 0}, "bottleneck"), ({"hidden": 0}, "hidden"),
    ({"pool_size": 0}, "pool_size"), ({"schedule": "linear"}, "schedule"),
])
def test_stage_rejects_bad_new_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lk.Stage(8, 3, clusters=8, **kwargs)


def test_schedule_factors():
    cosine, step = lk.Stage(8, schedule="cosine"), lk.Stage(8, schedule="step")
    factors = [cosine.lr_factor(e, 4) for e in range(4)]
    assert factors == sorted(factors, reverse=True) and 0 < factors[-1] < 0.1 and factors[0] > 0.9
    assert [step.lr_factor(e, 8) for e in range(8)] == [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01]
    assert lk.Stage(8).lr_factor(3, 4) == 1.0


# ---------------------------------------------------------------------------
# a grown model of the new kinds: saving and every export format
# ---------------------------------------------------------------------------

NEW_KINDS = [
    lk.Stage(8, 3, strides=1, clusters=12, assignment="nearest", q=3, whiten=1e-2),
    lk.Stage(8, 3, strides=1, clusters=10, assignment="triangle", whiten=1e-1),
    lk.Stage(6, 1, readout="pooled", pool_size=3, pool_strides=2, bottleneck=5, hidden=4, input_pool=2,
             input_pool_strides=1),
]


@pytest.fixture(scope="module")
def new_kinds_model():
    """`grown_model` of NEW_KINDS with whitening and centroids fitted to real embeddings, random BN statistics."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    model = grown_model(NEW_KINDS, (13, 13, 2), num_classes=4, seed=3)
    x = rng.normal(size=(48, 13, 13, 2)).astype("float32")
    h = x
    for layer in model.layers:
        if isinstance(layer, ClusterAssignment):
            emb = np.asarray(h).reshape(-1, np.asarray(h).shape[-1])
            zca = fit_zca(emb, 1e-2)
            z = zca.transform(emb)
            layer.set_whitening(zca.mean, zca.matrix)
            # Centroids near (not at) embeddings of x: a point on a centroid puts the triangle code's
            # sqrt at 0, where float32 rounding is amplified without bound.
            picks = z[rng.choice(len(z), layer.n_clusters, replace=False)]
            layer.set_centroids(picks + 0.1 * rng.normal(size=picks.shape))
        h = layer(h)
        if layer.name == "stage3_readout_avgpool":
            pooled = np.asarray(h).reshape(-1, np.asarray(h).shape[-1])
    # BatchNorm statistics near the real ones (so the logits stay varied), but not its initial 0/1.
    bn = stage_layer(model, 3, "readout_bn")
    gamma, beta, _, _ = bn.get_weights()
    bn.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(scale=0.1, size=beta.shape),
                    pooled.mean(0) + 0.1 * pooled.std(0) * rng.normal(size=gamma.shape),
                    pooled.var(0) * rng.uniform(0.5, 2, gamma.shape)])
    return model, x, model.predict(x, verbose=0)


def test_new_kinds_layer_order(new_kinds_model):
    model, _, _ = new_kinds_model
    assert [l.name for l in model.layers] == [
        "stage1_conv", "stage1_assign", "stage2_conv", "stage2_assign", "stage3_pool", "stage3_conv",
        "stage3_readout_avgpool",
        "stage3_readout_bn", "stage3_readout_bottleneck", "stage3_readout_hidden", "stage3_readout_flatten",
        "stage3_readout"]
    assert lk.growth.names.clustered_stages(model) == [1, 2]


def test_input_pool_shapes_and_receptive_field(new_kinds_model):
    from layerwise_keras.monitoring.patches import receptive_field

    model, _, _ = new_kinds_model
    assert stage_layer(model, 3, "pool").output.shape[1:] == (8, 8, 10)  # 9x9 code, 2x2 windows, stride 1
    # 3x3 + 3x3 stride-1 convolutions, a 2x2 stride-1 pool, a 1x1 convolution: 6x6 fields, jump 1, an 8x8 grid.
    field = receptive_field(model, 3)
    assert field.size == (6, 6) and field.jump == (1, 1) and field.grid == (8, 8)
    with pytest.raises(ValueError, match="input_pool_strides needs input_pool"):
        lk.Stage(8, input_pool_strides=2)


def test_new_kinds_round_trip_keras_file(new_kinds_model, tmp_path):
    model, x, expected = new_kinds_model
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("stage1_assign").get_config()["q"] == 3
    assert loaded.get_layer("stage2_assign").whiten
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)


def test_new_kinds_export_with_parity(new_kinds_model, tmp_path):
    model, x, expected = new_kinds_model
    portable = export.to_portable_model(model)
    assert {"stage1_whiten", "stage2_whiten"} <= {l.name for l in portable.layers}
    assert not any(isinstance(l, ClusterAssignment) for l in portable.layers)
    np.testing.assert_allclose(portable.predict(x, verbose=0), expected, atol=1e-5)
    assert_export_parity(model, x, expected, tmp_path)  # on codes that are not degenerate (>= 2 classes predicted)


@pytest.mark.parametrize("form", ["grown", "portable"])
def test_cluster_atlas_ranks_by_distance_in_the_whitened_space(new_kinds_model, form):
    """A whitening stage's atlas: its nearest positions and distances are those k-means used (whitened)."""
    pytest.importorskip("matplotlib")
    from layerwise_keras.monitoring.plots import cluster_atlas

    model, x, _ = new_kinds_model
    target = model if form == "grown" else export.to_portable_model(model)
    atlas = cluster_atlas(target, x, stage=2, per_cluster=3)
    # Brute force on the grown model: stage-2 embeddings, whitened with the layer's own ZCA, to its centroids.
    assign = stage_layer(model, 2, "assign")
    emb = keras.ops.convert_to_numpy(keras.Model(model.inputs[0], stage_layer(model, 2, "conv").output)(x))
    mean, matrix, c = (keras.ops.convert_to_numpy(w).astype("float64")
                       for w in (assign.whiten_mean, assign.whiten_matrix, assign.centroids))
    z = (emb.astype("float64") - mean) @ matrix
    d = ((z[..., None, :] - c) ** 2).sum(-1)
    raw = ((emb[..., None, :].astype("float64") - c) ** 2).sum(-1)
    assert (d.argmin(-1) != raw.argmin(-1)).mean() > 0.1  # the whitening changes which centroid is nearest
    ids = d.argmin(-1)
    np.testing.assert_array_equal(np.bincount(ids.ravel(), minlength=assign.n_clusters), atlas["counts"])
    for k in np.flatnonzero(atlas["counts"] >= 3):
        members = np.sort(d[ids == k][:, k])[:3]
        np.testing.assert_allclose(atlas["sq_distances"][k], members, rtol=1e-4, atol=1e-4)
        for i, r, col in atlas["positions"][k]:
            assert ids[i, r, col] == k


# ---------------------------------------------------------------------------
# growing with them
# ---------------------------------------------------------------------------


class _LearningRates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def _record(self):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_epoch_begin(self, epoch, logs=None):
        self._record()


class _LearningRatesAtEpochEnd(_LearningRates):
    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        self._record()


def test_growth_with_whitening_nearest_pooled_head_and_schedule():
    from layerwise_keras.runs.pipeline import load_splits

    splits = load_splits({"name": "hierarchical_digits", "train": 1500, "val": 200, "test": 300}, seed=0)
    stages = [
        lk.Stage(16, 3, clusters=16, epochs=3, whiten=1e-2, assignment="nearest", q=2, schedule="cosine"),
        lk.Stage(32, 3, clusters=32, epochs=3, schedule="step"),
        # The last map is 1x1 here: pooling it away would drop where each stroke is.
        lk.Stage(32, 3, epochs=4, readout="pooled", pool_size=1, bottleneck=16, schedule="cosine"),
    ]
    model = lk.input_model(splits["x_train"].shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    trainer = lk.LayerwiseTrainer(stages, num_classes=10, kmeans_data=splits["x_train"], verbose=0)
    rates = _LearningRates()
    model.fit(splits["x_train"], splits["y_train"], batch_size=64, epochs=trainer.total_epochs,
              validation_data=(splits["x_val"], splits["y_val"]), callbacks=[trainer, rates], verbose=0)

    expected = [3e-3 * s.lr_factor(e, b) for s, b in zip(stages, trainer.stage_budgets()) for e in range(b)]
    np.testing.assert_allclose(rates.rates, expected, rtol=1e-5)
    # The stage's whitening is the ZCA of its training embeddings, and its centroids live in that space.
    conv = stage_layer(model, 1, "conv")
    emb = keras.ops.convert_to_numpy(conv(splits["x_train"])).reshape(-1, 16)
    zca = fit_zca(emb, 1e-2)
    assign = stage_layer(model, 1, "assign")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(assign.whiten_mean), zca.mean, rtol=1e-3, atol=1e-4)
    matrix = keras.ops.convert_to_numpy(assign.whiten_matrix)
    np.testing.assert_allclose(matrix, zca.matrix, rtol=1e-2, atol=1e-3 * np.abs(zca.matrix).max())
    assert trainer.stage_results[0]["whiten_seconds"] >= 0
    codes = keras.ops.convert_to_numpy(assign(conv(splits["x_test"][:20])))
    assert (codes.sum(-1) == 2).all()
    accuracy = float((model.predict(splits["x_test"], verbose=0).argmax(-1) == splits["y_test"]).mean())
    # Chance is 0.1; measured 0.59-0.67 on the 2-core CPU (oneDNN on and off), against 0.96 once for the same
    # budgets with hard codes and flatten readouts: on the digits, whitening and a q=2 code cost accuracy.
    assert accuracy >= 0.4


def test_end_to_end_twin_follows_the_last_scheduled_stage_over_its_whole_run():
    from layerwise_keras.runs.config import load_config, validate_config
    from layerwise_keras.runs.pipeline import end_to_end, load_splits

    config = load_config("hierarchical_2level")
    config["dataset"] = {"name": "hierarchical_digits", "train": 256, "val": 64, "test": 64, "options": {}}
    config["stages"] = [lk.Stage(8, 3, clusters=8, epochs=2, schedule="step").get_config(),
                        lk.Stage(8, 3, epochs=3, schedule="cosine").get_config()]
    config = validate_config(config)
    splits = load_splits(config["dataset"], seed=0)
    rates = _LearningRatesAtEpochEnd()  # our callbacks run before the twin's scheduler at an epoch's begin
    model, _ = end_to_end(config, splits, seed=0, verbose=0, callbacks=[rates])
    base = config["optimizer"]["config"]["learning_rate"]
    # 5 epochs in all, on the cosine of the last scheduled stage (not the step schedule of stage 1).
    cosine = lk.Stage(8, 3, epochs=3, schedule="cosine")
    np.testing.assert_allclose(rates.rates, [base * cosine.lr_factor(e, 5) for e in range(5)], rtol=1e-5)
    assert rates.rates[0] > rates.rates[-1] > 0


def test_pooled_head_batchnorm_statistics_converge_within_a_short_stage():
    """Inference uses BatchNorm's moving statistics: after a 60-step stage they must be the data's, not 0/1."""
    from layerwise_keras.runs.pipeline import load_splits

    splits = load_splits({"name": "hierarchical_digits", "train": 640, "val": 100, "test": 100}, seed=0)
    stages = [lk.Stage(16, 3, clusters=16, epochs=1), lk.Stage(16, 3, epochs=6, readout="pooled", pool_size=1,
                                                                 bottleneck=8)]
    model = lk.input_model(splits["x_train"].shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    trainer = lk.LayerwiseTrainer(stages, num_classes=10, kmeans_data=splits["x_train"], verbose=0)
    model.fit(splits["x_train"], splits["y_train"], batch_size=64, epochs=trainer.total_epochs,
              callbacks=[trainer], verbose=0)  # stage 2: 60 steps
    bn = stage_layer(model, 2, "readout_bn")
    probe = keras.Sequential([keras.Input(splits["x_train"].shape[1:])] + model.layers[: model.layers.index(bn)])
    features = keras.ops.convert_to_numpy(probe(splits["x_train"])).reshape(-1, bn.moving_mean.shape[0])
    moving_mean, moving_var = (keras.ops.convert_to_numpy(v) for v in (bn.moving_mean, bn.moving_variance))
    scale = features.std(0) + 1e-6
    # With Keras' default momentum 0.99, 0.99**60 = 55 % of the initial 0 / 1 would remain.
    assert np.abs(moving_mean - features.mean(0)).max() <= 0.25 * scale.max() + 0.1 * np.abs(features.mean(0)).max()
    np.testing.assert_allclose(moving_var, features.var(0), rtol=0.3, atol=1e-3)
