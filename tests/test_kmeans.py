"""Tests for layerwise_keras.clustering.kmeans.KMeans."""

import pickle
import time
import warnings

import numpy as np
import pytest

from layerwise_keras.clustering.dispatch import uses_xla
from layerwise_keras.clustering.kmeans import KMeans

K = 10
D = 8


def make_blobs(n=3000, k=K, d=D, std=1.0, seed=0):
    """Well-separated gaussian blobs; returns (points float32, true centers)."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-20.0, 20.0, size=(k, d)).astype(np.float32)
    labels = rng.integers(k, size=n)
    x = centers[labels] + rng.normal(0.0, std, size=(n, d)).astype(np.float32)
    return x.astype(np.float32), centers


def brute_force_labels(x, centers):
    d2 = ((x.astype(np.float64)[:, None, :] - centers[None].astype(np.float64)) ** 2).sum(-1)
    return d2.argmin(axis=1), d2.min(axis=1)


def make_dataset(x, batch):
    tf = pytest.importorskip("tensorflow")
    return tf.data.Dataset.from_tensor_slices(x).batch(batch)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs()


def test_inertia_matches_sklearn(blobs):
    cluster = pytest.importorskip("sklearn.cluster")
    x, _ = blobs
    km = KMeans(K, max_points_per_centroid=None).fit(x)
    ref = cluster.KMeans(n_clusters=K, n_init=1, random_state=0).fit(x)
    assert km.n_points_ == x.shape[0]
    assert km.converged_
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=0.01)


def test_attributes(blobs):
    x, _ = blobs
    km = KMeans(K, max_points_per_centroid=None)
    assert km.fit(x) is km
    assert km.cluster_centers_.dtype == np.float32
    assert km.cluster_centers_.shape == (K, D)
    assert km.counts_.dtype == np.int64 and km.counts_.shape == (K,)
    assert km.counts_.sum() == x.shape[0]
    assert isinstance(km.inertia_, float)
    assert 1 <= km.n_iter_ <= km.max_iter
    assert km.n_points_seen_ == x.shape[0]
    assert km.n_reseeded_ == 0
    # counts_ and inertia_ describe the final assignment of the returned centroids.
    labels, mind = brute_force_labels(x, km.cluster_centers_)
    np.testing.assert_array_equal(km.counts_, np.bincount(labels, minlength=K))
    assert km.inertia_ == pytest.approx(mind.sum(), rel=1e-4)


def test_deterministic(blobs):
    x, _ = blobs
    a = KMeans(K, seed=3, max_points_per_centroid=100).fit(x)
    b = KMeans(K, seed=3, max_points_per_centroid=100).fit(x)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_
    # Refitting the same instance is deterministic too.
    centers = a.cluster_centers_.copy()
    assert np.array_equal(a.fit(x).cluster_centers_, centers)


def test_tensor_input_matches_array(blobs):
    tf = pytest.importorskip("tensorflow")
    x, _ = blobs
    a = KMeans(K, seed=1).fit(x)
    b = KMeans(K, seed=1).fit(tf.constant(x))
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)


def test_dataset_subsampled_matches_array(blobs):
    x, _ = blobs
    ds = make_dataset(x, batch=128)
    a = KMeans(K, max_points_per_centroid=100, batch_size=300).fit(x)
    b = KMeans(K, max_points_per_centroid=100, batch_size=300).fit(ds)
    assert a.n_points_ == b.n_points_ == K * 100
    assert a.n_points_seen_ == b.n_points_seen_ == x.shape[0]
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_
    np.testing.assert_array_equal(a.predict(x), b.predict(ds))


def assert_same_up_to_rounding(a, b):
    """Two fits that differ only in how float32 sums were rounded (per chunk vs incrementally)."""
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.inertia_, b.inertia_, rtol=1e-5)
    np.testing.assert_array_equal(a.counts_, b.counts_)


def test_dataset_streamed_matches_array():
    # N <= K * 256, so k-means++ sees all points on both paths; batch_size=512
    # gives several chunks and a padded last chunk; the dataset's batches of
    # 100 rows are re-batched to 512.  The dataset's sums are per chunk, the
    # array's incremental (points that move between clusters), so they agree
    # up to float32 rounding.
    x, _ = make_blobs(n=2000)
    ds = make_dataset(x, batch=100)
    a = KMeans(K, max_points_per_centroid=None, batch_size=512).fit(x)
    b = KMeans(K, max_points_per_centroid=None, batch_size=512).fit(ds)
    assert a.n_points_ == b.n_points_ == 2000
    assert_same_up_to_rounding(a, b)
    np.testing.assert_array_equal(a.predict(x), b.predict(ds))


def test_dataset_streamed_larger_than_seed_sample(blobs):
    # N > K * 256: Lloyd streams all points; with the same init array the
    # result equals the in-memory run on all points.
    x, centers = blobs
    init = centers + 0.5
    ds = make_dataset(x, batch=77)
    a = KMeans(K, init=init, max_points_per_centroid=None, batch_size=1000).fit(x)
    b = KMeans(K, init=init, max_points_per_centroid=None, batch_size=1000).fit(ds)
    assert b.n_points_ == b.n_points_seen_ == x.shape[0]
    assert_same_up_to_rounding(a, b)
    # And k-means++ on the streamed dataset (seeded from a 2560-point sample)
    # still finds the blobs.
    c = KMeans(K, max_points_per_centroid=None).fit(ds)
    assert c.inertia_ == pytest.approx(a.inertia_, rel=0.01)


def numpy_lloyd(x, init, iters):
    """Reference Lloyd's algorithm in float64 NumPy (no empty clusters expected)."""
    c = init.astype(np.float64)
    x64 = x.astype(np.float64)
    for _ in range(iters):
        labels = brute_force_labels(x64, c)[0]
        c = np.stack([x64[labels == j].mean(axis=0) for j in range(c.shape[0])])
    return c, brute_force_labels(x64, c)[0]


def test_resident_incremental_sums_match_reference():
    # Overlapping blobs and a poor start: many points change cluster in the
    # first iterations (sums recomputed from all points), then fewer than a
    # third (only the moved points' sums are updated); the result must equal
    # plain float64 Lloyd.  A small batch_size gives several padded chunks.
    x, centers = make_blobs(n=5000, std=4.0, seed=3)
    init = x[:K].copy()
    km = KMeans(K, init=init, max_iter=12, tol=0.0, max_points_per_centroid=None, batch_size=700)
    calls = {"sums": 0, "delta": 0}
    pass_fn, sums_fn, delta_fn = km._resident_fns()

    def counted(name, fn):
        def call(*args):
            calls[name] += 1
            return fn(*args)
        return call

    km._resident = (pass_fn, counted("sums", sums_fn), counted("delta", delta_fn))
    km.fit(x)
    assert calls["sums"] >= 1, calls
    if not uses_xla(km.jit_compile):  # under XLA the sums are always recomputed (no new shapes)
        assert calls["delta"] >= 1, calls
    ref_centers, ref_labels = numpy_lloyd(x, init, 12)
    np.testing.assert_allclose(km.cluster_centers_, ref_centers, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(km.predict(x), ref_labels)
    np.testing.assert_array_equal(km.counts_, np.bincount(ref_labels, minlength=K))


def test_subsampling(blobs):
    x, _ = blobs
    km = KMeans(K, max_points_per_centroid=50).fit(x)
    assert km.n_points_ == K * 50
    assert km.n_points_seen_ == x.shape[0]
    assert km.counts_.sum() == K * 50
    full = KMeans(K, max_points_per_centroid=1000).fit(x)
    assert full.n_points_ == x.shape[0]
    # The subsample still recovers the blobs (50 points per centroid: the
    # centroid estimates are noisier, expected excess inertia ~ K*D/50 ~ 2%).
    labels, mind = brute_force_labels(x, km.cluster_centers_)
    assert mind.sum() == pytest.approx(full.inertia_, rel=0.05)


def test_verbose_reports_subsampling(blobs, capsys):
    x, _ = blobs
    KMeans(K, max_points_per_centroid=50, verbose=1).fit(x)
    out = capsys.readouterr().out
    assert "subsampled 500 of 3000 points" in out


def test_predict_matches_brute_force(blobs):
    x, _ = blobs
    km = KMeans(K, max_points_per_centroid=100).fit(x)
    labels = km.predict(x)
    assert labels.dtype == np.int32 and labels.shape == (x.shape[0],)
    np.testing.assert_array_equal(labels, brute_force_labels(x, km.cluster_centers_)[0])
    # Inputs of any length, including one point and none.
    np.testing.assert_array_equal(km.predict(x[5:6]), labels[5:6])
    assert km.predict(x[:0]).shape == (0,)


def test_random_init(blobs):
    x, _ = blobs
    km = KMeans(K, init="random", n_init=3).fit(x)
    assert np.isfinite(km.cluster_centers_).all()
    assert km.counts_.sum() == km.n_points_


def test_n_init_keeps_lowest_inertia(blobs):
    x, _ = blobs
    one = KMeans(K, init="random", n_init=1, seed=5).fit(x)
    many = KMeans(K, init="random", n_init=4, seed=5).fit(x)
    # The first of the n_init seeded runs is the n_init=1 run.
    assert many.inertia_ <= one.inertia_


def test_empty_cluster_is_reseeded(blobs):
    x, centers = blobs
    init = centers.copy()
    init[3] = 1e4  # far from all data: gets no point in the first pass
    with pytest.warns(UserWarning, match="re-seeded"):
        km = KMeans(K, init=init, max_points_per_centroid=None).fit(x)
    assert np.isfinite(km.cluster_centers_).all()
    assert km.n_reseeded_ >= 1
    assert (km.counts_ > 0).all()
    assert np.abs(km.cluster_centers_).max() < 100


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_fewer_distinct_points_than_clusters(init):
    points = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], np.float32)
    x = np.repeat(points, 20, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        km = KMeans(5, init=init).fit(x)
    assert np.isfinite(km.cluster_centers_).all()
    assert km.counts_.sum() == 60
    assert km.inertia_ == 0.0
    # Every distinct point is a centroid; the surplus clusters are duplicates.
    for p in points:
        assert (np.abs(km.cluster_centers_ - p).sum(axis=1) == 0).any()
    np.testing.assert_array_equal(
        km.cluster_centers_[km.predict(x)], x
    )


def test_all_points_identical():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        km = KMeans(3).fit(np.ones((10, 4)))
    np.testing.assert_array_equal(km.cluster_centers_, np.ones((3, 4), np.float32))
    assert km.counts_.sum() == 10


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_nan_input():
    x = np.ones((20, 3), np.float32)
    x[2, 1] = np.nan
    x[7, 0] = np.nan
    with pytest.raises(ValueError, match=r"2 non-finite values"):
        KMeans(2).fit(x)


def test_inf_input():
    x = np.ones((20, 3), np.float32)
    x[4, 2] = np.inf
    with pytest.raises(ValueError, match=r"1 non-finite values"):
        KMeans(2).fit(x)


def test_nan_in_dataset():
    x = np.ones((20, 3), np.float32)
    x[19, 0] = -np.inf
    with pytest.raises(ValueError, match=r"1 non-finite values"):
        KMeans(2).fit(make_dataset(x, batch=6))


def test_rank3_input():
    with pytest.raises(ValueError, match=r"expects 2-D input .*got shape \(10, 4, 3\)"):
        KMeans(2).fit(np.zeros((10, 4, 3), np.float32))


def test_unbatched_dataset():
    tf = pytest.importorskip("tensorflow")
    ds = tf.data.Dataset.from_tensor_slices(np.zeros((10, 4), np.float32))
    with pytest.raises(ValueError, match=r"expects 2-D input .*got shape \(4,\)"):
        KMeans(2).fit(ds)


def test_non_numeric_input():
    with pytest.raises(ValueError, match=r"numeric"):
        KMeans(1).fit(np.array([["a", "b"], ["c", "d"]]))


def test_zero_points():
    with pytest.raises(ValueError, match=r"0 points"):
        KMeans(2).fit(np.zeros((0, 4), np.float32))


def test_fewer_points_than_clusters():
    with pytest.raises(
        ValueError, match=r"n_clusters=8 needs at least 8 points, got 5"
    ):
        KMeans(8).fit(np.random.default_rng(0).normal(size=(5, 3)))


def test_predict_before_fit():
    with pytest.raises(ValueError, match=r"not fitted"):
        KMeans(2).predict(np.zeros((3, 2), np.float32))


def test_predict_wrong_feature_dim(blobs):
    x, _ = blobs
    km = KMeans(2).fit(x)
    with pytest.raises(ValueError, match=r"fitted on 8 features.*5 features"):
        km.predict(x[:, :5])


def test_predict_nan(blobs):
    x, _ = blobs
    km = KMeans(2).fit(x)
    bad = x[:10].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite values"):
        km.predict(bad)


def test_bad_init_shape():
    # Wrong number of centroids: caught at construction.
    with pytest.raises(ValueError, match=r"init array must have shape"):
        KMeans(3, init=np.zeros((2, 4)))
    # Wrong feature dim: caught at fit.
    with pytest.raises(ValueError, match=r"init array has shape \(3, 4\).*2 features"):
        KMeans(3, init=np.zeros((3, 4))).fit(np.zeros((10, 2), np.float32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_clusters=0), "n_clusters must be >= 1"),
        (dict(n_clusters=2, max_iter=0), "max_iter must be >= 1"),
        (dict(n_clusters=2, tol=-1.0), "tol must be"),
        (dict(n_clusters=2, init="kmeans"), "Unknown init"),
        (dict(n_clusters=2, init=[[np.nan, 0.0], [0.0, 0.0]]), "non-finite"),
        (dict(n_clusters=2, max_points_per_centroid=0), "max_points_per_centroid"),
        (dict(n_clusters=2, n_init=0), "n_init must be >= 1"),
    ],
)
def test_bad_constructor_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KMeans(**kwargs)


class _Stream:
    """A duck-typed re-iterable stream (what the trainer passes): only
    `as_numpy_iterator()`, yielding [b, D] float batches."""

    def __init__(self, x, batch):
        self.x, self.batch = x, batch

    def as_numpy_iterator(self):
        for start in range(0, len(self.x), self.batch):
            yield self.x[start : start + self.batch].astype(np.float64)


@pytest.mark.parametrize("mppc", [100, None])
def test_duck_typed_stream_matches_array(mppc):
    x, _ = make_blobs(n=2000)
    a = KMeans(K, max_points_per_centroid=mppc, batch_size=512).fit(x)
    b = KMeans(K, max_points_per_centroid=mppc, batch_size=512).fit(_Stream(x, 64))
    assert b.n_points_seen_ == 2000
    assert b.n_points_ == (K * 100 if mppc else 2000)
    if mppc:  # sampled: Lloyd runs on the same in-memory sample
        assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    else:  # streamed: per-chunk sums vs the array's incremental sums
        assert_same_up_to_rounding(a, b)


def test_distribute_argument_is_checked():
    import keras

    with pytest.raises(ValueError, match="distribute must be None, a tf.distribute.Strategy or 'processes'"):
        KMeans(3, distribute="gpus")
    if keras.backend.backend() != "jax":
        with pytest.raises(ValueError, match="needs the JAX backend"):
            KMeans(3, distribute="processes")


def test_xla_compiled_passes_match_graph(blobs):
    # jit_compile=True is what a GPU/TPU gets by default ("auto"): the resident pass and the sums under XLA
    # (sums always recomputed there) must give the clustering of the plain graph.
    x, centers = blobs
    init = centers + 0.5
    a = KMeans(K, init=init, max_iter=6, tol=0.0, max_points_per_centroid=None, batch_size=700).fit(x)
    b = KMeans(K, init=init, max_iter=6, tol=0.0, max_points_per_centroid=None, batch_size=700,
               jit_compile=True).fit(x)
    assert uses_xla(b.jit_compile)
    assert_same_up_to_rounding(a, b)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


@pytest.mark.parametrize("mppc", [None, 30])
def test_on_pass_hook_reports_every_assignment_pass(mppc):
    # The benchmark's timing hook: one (start, end) per pass -- n_iter Lloyd passes, then the scoring pass --
    # in order, and the same clustering as without the hook.
    x, _ = make_blobs(n=3000, std=4.0, seed=3)  # overlapping blobs, a poor start: all 5 iterations run
    plain = KMeans(K, init=x[:K], max_iter=5, tol=0.0, max_points_per_centroid=mppc).fit(x)
    km = KMeans(K, init=x[:K], max_iter=5, tol=0.0, max_points_per_centroid=mppc)
    passes = []
    km.on_pass = lambda start, end: passes.append((start, end))
    before = time.perf_counter()
    km.fit(x)
    assert len(passes) == km.n_iter_ + 1 == 6
    assert before <= passes[0][0] and all(s <= e for s, e in passes)
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(passes, passes[1:]))
    np.testing.assert_array_equal(km.cluster_centers_, plain.cluster_centers_)
    assert KMeans.on_pass is None and "on_pass" not in km.get_config()


def test_pickle_round_trip_drops_compiled_functions_and_hook(blobs):
    x, _ = blobs
    km = KMeans(K, max_iter=5).fit(x)
    km.on_pass = lambda start, end: None  # a closure: not picklable, dropped
    again = pickle.loads(pickle.dumps(km))
    assert again._step is None and again._resident is None and again.on_pass is None
    np.testing.assert_array_equal(again.predict(x), km.predict(x))
    assert again.fit(x).n_iter_ == km.n_iter_
