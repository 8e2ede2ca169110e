"""A stage's clustering step: the stream of its embeddings, then whitening and k-means.

`cluster_stage` is the one implementation of "whiten (if the stage says so),
k-means-cluster, report the figures" that both growth paths run: the
`LayerwiseTrainer` at a stage's end (or, for a cluster-first stage, its
beginning) and `growth.cached` on a stage's cached input.
"""

import math
import time
import warnings

import numpy as np

from layerwise_keras.clustering.kmeans import KMeans
from layerwise_keras.clustering.whitening import WhitenedStream, fit_zca
from layerwise_keras.datasets.batches import image_batches
from layerwise_keras.growth.names import TRAINER

NON_FINITE_HINT = (
    "The inputs may hold NaN/Inf values (layerwise_keras.datasets.check_images finds them) "
    "or the learning rate is too high."
)


class EmbeddingStream:
    """A re-iterable stream of per-position embeddings, for `KMeans.fit`.

    With `stage` set, a chunk holding NaN/Inf is an error that names the
    stage (the trainer's own check, before k-means sees the points) and
    `owner`, the growth path that streams it.
    """

    def __init__(self, embed_fn, data, batch_size, stage=None, owner=TRAINER):
        self._embed_fn = embed_fn
        self._data = data
        self._batch_size = batch_size
        self._stage = stage
        self._owner = owner

    def _batches(self):
        """The input batches `embed_fn` reads: float32 images (a subclass may read stored batches as they are)."""
        return image_batches(self._data, self._batch_size)

    def as_numpy_iterator(self):
        for images in self._batches():
            emb = np.asarray(self._embed_fn(images))
            emb = emb.reshape(-1, emb.shape[-1])
            if self._stage is not None and not np.isfinite(emb).all():
                bad = int(emb.size - np.count_nonzero(np.isfinite(emb)))
                raise ValueError(
                    f"{self._owner}: stage {self._stage}'s embeddings hold {bad} non-finite values at the "
                    f"stage end, before k-means. {NON_FINITE_HINT}"
                )
            yield emb


def cluster_stage(stage, n, stream, seed=0, distribute=None, verbose=0, owner=TRAINER):
    """Runs stage `n`'s k-means on a stream of its embeddings (whitened first when the stage whitens).

    Args:
        stage: the `Stage` (its `clusters`, `whiten` and `kmeans` options are used).
        n: 1-based stage index (seeds k-means with `seed + n - 1`; names the
            stage in errors).
        stream: the embeddings `[points, dim]`: anything `KMeans.fit` takes.
        seed: the growth's seed.
        distribute: what `KMeans(distribute=...)` takes: a
            `tf.distribute.Strategy`, `"processes"`, or None.
        verbose: 0 silent; 1 a line when whitening and k-means start and
            end (they take minutes on CIFAR-10), with their times.
        owner: the growth path that names itself in those lines, errors and
            warnings (`names.TRAINER` or `names.CACHED`).

    Returns:
        `(kmeans, whitening, figures)`: the fitted `KMeans` (centroids in
        whitened coordinates when the stage whitens), the `(mean, matrix)` of
        the stage's ZCA or None, and the per-stage figures the trainer logs
        (`kmeans_inertia`, `kmeans_iterations`, `cluster_usage`, ...;
        `kmeans_counts` too, for `stage_results` only).
    """
    def say(message):
        if verbose:
            print(f"{owner}: stage {n}: {message}", flush=True)

    whitening, extra = None, {}
    what = "patches" if stage.cluster == "patches" else "embeddings"
    if stage.whiten is not None:
        say(f"fitting the ZCA whitening of its {what} (epsilon {stage.whiten:g}) ...")
        start = time.perf_counter()
        zca = fit_zca(stream, stage.whiten)
        stream = WhitenedStream(stream, zca)
        whitening = (zca.mean, zca.matrix)
        extra = {"whiten_seconds": time.perf_counter() - start}
        say(f"whitening fitted on {zca.n_points} points in {extra['whiten_seconds']:.1f} s.")
    options = {"seed": seed + n - 1}
    options.update(stage.kmeans)
    if distribute is not None:
        options["distribute"] = distribute
    kmeans = KMeans(stage.clusters, **options)
    say(f"k-means of its {what} into {stage.clusters} clusters (at most {kmeans.max_iter} Lloyd iterations) ...")
    start = time.perf_counter()
    try:
        kmeans.fit(stream)
    except ValueError as err:
        raise ValueError(f"{owner}: k-means of stage {n} failed: {err}") from err
    kmeans_seconds = time.perf_counter() - start
    say(f"k-means done: {kmeans.n_iter_} iterations on {kmeans.n_points_} points in {kmeans_seconds:.1f} s.")
    counts = np.asarray(kmeans.counts_, dtype="float64")
    used = counts > 0
    p = counts[used] / counts.sum()
    entropy = float(-(p * np.log(p)).sum() / math.log(stage.clusters))
    if kmeans.n_reseeded_:
        warnings.warn(f"{owner}: k-means of stage {n} re-seeded {kmeans.n_reseeded_} empty clusters.")
    return kmeans, whitening, {
        **extra,
        "kmeans_inertia": float(kmeans.inertia_),
        "kmeans_mean_sq_dist": float(kmeans.inertia_) / max(kmeans.n_points_, 1),
        "kmeans_iterations": int(kmeans.n_iter_),
        "kmeans_seconds": kmeans_seconds,
        "cluster_usage": float(used.mean()),
        "cluster_entropy": entropy,
        "dead_clusters": int((~used).sum()),
        "kmeans_counts": [int(c) for c in kmeans.counts_],
    }
