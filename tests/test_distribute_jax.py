"""Several JAX processes: `layerwise_keras.clustering.distribute_jax` and Keras' `DataParallel`, two processes on loopback.

Two fresh processes (`KERAS_BACKEND=jax`, CPU only, gloo collectives) join
through `keras.distribution.initialize` on 127.0.0.1 at a free port. Each
checks, and prints as JSON:

* `process_sum` of float64 / float32 / int64 / bool arrays (process-specific
  values) equals the sum computed locally from both processes' inputs (bit
  for bit in float64), keeps the dtypes, and is identical on both processes;
* `broadcast_from_first` returns process 0's bytes (-0.0 and NaN included);
  `process_allgather` concatenates rows (2 from process 0, 3 from process 1);
* a shape mismatch raises the same ValueError on both processes (no hang);
* `model.fit` under `DataParallel(auto_shard_dataset=False)` on per-process
  rows (`process_rows`, batch 16 each = global batch 32) ends with weights
  identical on both processes and equal (within 1e-5) to a one-process run
  on the full data in the same process, with the same per-epoch losses.

The one-process paths (no `jax.distributed`) run in this process: they must
be the identity and must not start JAX's backends.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed (pip install -e .[jax] installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r"""
import json, os, sys
os.environ["KERAS_BACKEND"] = "jax"
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
import numpy as np
import keras
from layerwise_keras.clustering import distribute_jax as dj

port, pid = sys.argv[1], int(sys.argv[2])
keras.distribution.initialize(job_addresses=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
out = {"count": dj.process_count(), "index": dj.process_index()}

# process_sum: each process's inputs are a seeded function of its index.
def inputs(p):
    r = np.random.default_rng(100 + p)
    return [r.normal(size=(5, 3)), r.normal(size=4).astype(np.float32),
            r.integers(-1000, 1000, size=(2, 2)), r.random(6) > 0.5, np.float64(p + 0.25)]
mine = inputs(pid)
summed = dj.process_sum(mine)
expected = [a + b for a, b in zip(inputs(0), inputs(1))]
expected[3] = inputs(0)[3].astype(np.int64) + inputs(1)[3]
out["sum_dtypes"] = [a.dtype.str for a in summed]
out["sum_exact"] = [bool(np.array_equal(a, e)) for a, e in zip(summed, expected)]
out["sum_bits"] = [a.tobytes().hex() for a in summed]

# broadcast_from_first: bit for bit.
value = np.array([1.5, -0.0, np.nan, 3.0]) if pid == 0 else np.array([9.0, 9.0, 9.0, 9.0])
got = dj.broadcast_from_first(value)
out["broadcast_bits"] = got.tobytes().hex() == np.array([1.5, -0.0, np.nan, 3.0]).tobytes().hex()
out["broadcast_int"] = dj.broadcast_from_first(np.arange(3, dtype=np.int32) * (pid + 1)).tolist()

# process_allgather: different row counts.
rows = np.full((2 + pid, 2), pid, dtype=np.float32) + np.arange(2 + pid, dtype=np.float32)[:, None]
out["allgather"] = dj.process_allgather(rows).tolist()

# A mismatch raises on both processes instead of hanging.
try:
    dj.process_sum([np.zeros(3 + pid)])
    out["mismatch"] = "no error"
except ValueError as e:
    out["mismatch"] = "ValueError"

# Data-parallel fit on per-process rows vs a one-process fit on the full data.
rng = np.random.default_rng(0)
n, batch = 256, 32
x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int32")

def fit(x, y, batch_size):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
    return model, history.history["loss"]

keras.distribution.set_distribution(keras.distribution.DataParallel(
    devices=keras.distribution.list_devices(), auto_shard_dataset=False))
mine_rows = dj.process_rows(n, batch)
model, losses = fit(x[mine_rows], y[mine_rows], batch // dj.process_count())
weights = [np.asarray(w) for w in model.get_weights()]
out["devices"] = keras.distribution.list_devices()
out["eval_loss"] = float(model.evaluate(x[mine_rows], y[mine_rows], batch_size=batch // 2, verbose=0))
try:
    model.predict(x[mine_rows], verbose=0)
    out["predict"] = "ok"
except RuntimeError as e:
    out["predict"] = str(e)[:80]

keras.distribution.set_distribution(None)
single, single_losses = fit(x, y, batch)
out["dist_losses"] = losses
out["single_losses"] = single_losses
out["max_weight_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(weights, single.get_weights()))
out["weights_bits"] = [w.tobytes().hex() for w in weights]
print("RESULT " + json.dumps(out), flush=True)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(script, timeout=240):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    port = _free_port()
    # Output goes to files, not pipes: a process blocked on a full pipe while the other waits for it at
    # JAX's shutdown barrier would deadlock both.
    logs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in range(2)]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(port), str(i)], cwd=ROOT, env=env,
                         stdout=out, stderr=err, text=True)
        for i, (out, err) in enumerate(logs)
    ]
    results = []
    try:
        for p, (out, err) in zip(procs, logs):
            p.wait(timeout=timeout)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
            assert p.returncode == 0, stderr[-3000:]
            line = [l for l in stdout.splitlines() if l.startswith("RESULT ")][-1]
            results.append(json.loads(line[len("RESULT "):]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for out, err in logs:
            out.close()
            err.close()
    return results


def test_two_processes_on_loopback():
    r0, r1 = _run_two_processes(WORKER)
    assert (r0["count"], r0["index"], r1["count"], r1["index"]) == (2, 0, 2, 1)
    for r in (r0, r1):
        assert r["sum_dtypes"] == ["<f8", "<f4", "<i8", "<i8", "<f8"]
        assert all(r["sum_exact"]), r["sum_exact"]
        assert r["broadcast_bits"] is True
        assert r["broadcast_int"] == [0, 1, 2]
        assert r["allgather"] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
        assert r["mismatch"] == "ValueError"
        assert len(r["devices"]) == 2
        assert "non-addressable" in r["predict"]  # Keras' known limitation: predict under DataParallel
        np.testing.assert_allclose(r["dist_losses"], r["single_losses"], rtol=1e-5)
        assert r["max_weight_diff"] < 1e-5
    assert r0["sum_bits"] == r1["sum_bits"]
    assert r0["weights_bits"] == r1["weights_bits"]
    assert r0["dist_losses"] == r1["dist_losses"]
    assert r0["eval_loss"] == r1["eval_loss"]


def test_one_process_is_identity_without_starting_jax():
    from layerwise_keras.clustering import distribute_jax as dj

    before = _backends_started()
    assert dj.process_count() == 1 and dj.process_index() == 0
    arrays = [np.arange(3.0), np.float32(2.5), np.array([True, False])]
    summed = dj.process_sum(arrays)
    assert [a.dtype.str for a in summed] == ["<f8", "<f4", "<i8"]
    np.testing.assert_array_equal(summed[0], arrays[0])
    assert summed[0] is not arrays[0]
    assert dj.broadcast_from_first(np.array([-0.0])).tobytes() == np.array([-0.0]).tobytes()
    np.testing.assert_array_equal(dj.process_allgather(np.ones((2, 3))), np.ones((2, 3)))
    np.testing.assert_array_equal(dj.process_rows(8, 4), np.arange(8))
    np.testing.assert_array_equal(dj.process_rows(8, 4, index=1, count=2), [2, 3, 6, 7])
    if not before:
        assert not _backends_started()  # jax.distributed.initialize would still be possible
    with pytest.raises(TypeError, match="list of arrays"):
        dj.process_sum(np.zeros(3))
    with pytest.raises(ValueError, match="multiple"):
        dj.process_rows(10, 3, count=2)


def _backends_started():
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


GROWTH_WORKER = r"""
import hashlib, json, os, sys
os.environ["KERAS_BACKEND"] = "jax"
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
import numpy as np
import keras
import layerwise_keras as lk
from layerwise_keras import datasets
from layerwise_keras.clustering import distribute_jax as dj
from layerwise_keras.clustering.kmeans import KMeans

port, pid = sys.argv[1], int(sys.argv[2])
keras.distribution.initialize(job_addresses=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
out = {}

# k-means on all points (no sampling): each process holds half of them; the
# sums are all-reduced, so the result is one-process k-means on all points.
rng = np.random.default_rng(0)
centers = rng.uniform(-10, 10, size=(6, 5))
points = (centers[rng.integers(6, size=3000)] + rng.normal(size=(3000, 5))).astype("float32")
init = points[:6].copy()
mine = points[pid::2]
km = KMeans(6, init=init, max_iter=20, tol=0.0, max_points_per_centroid=None, distribute="processes").fit(mine)
single = KMeans(6, init=init, max_iter=20, tol=0.0, max_points_per_centroid=None).fit(points)
out["km_centers"] = km.cluster_centers_.tobytes().hex()
out["km_max_diff"] = float(np.abs(km.cluster_centers_ - single.cluster_centers_).max())
out["km_counts"] = [km.counts_.tolist(), single.counts_.tolist()]
out["km_inertia"] = [km.inertia_, single.inertia_]
out["km_points"] = [km.n_points_, km.n_points_seen_]
# k-means++ seeding and sampling across processes: same centroids everywhere.
km2 = KMeans(6, max_points_per_centroid=100, n_init=2, seed=3, distribute="processes").fit(mine)
out["km2_centers"] = km2.cluster_centers_.tobytes().hex()
out["km2_points"] = [km2.n_points_, km2.n_points_seen_]

# The growth: DataParallel over both processes, each with its own rows and its
# own k-means shard (the images it trains on).
gen = datasets.HierarchicalModel(levels=2, patch_size=3, classes_per_level=(8, 4), variants_per_class=3,
                                 variant_changes=1, noise=0.1, num_labels=4, seed=0)
x, y, _ = gen.sample(2048, seed=1)
x_test, y_test, latents_test = gen.sample(500, seed=2)
keras.distribution.set_distribution(keras.distribution.DataParallel(
    devices=keras.distribution.list_devices(), auto_shard_dataset=False))
rows = dj.process_rows(len(x), 64)
keras.utils.set_random_seed(0)
trainer = lk.LayerwiseTrainer(
    [lk.Stage(width=64, kernel_size=3, clusters=24, epochs=3, kmeans={"n_init": 10}),
     lk.Stage(width=32, kernel_size=3, epochs=3)],
    num_classes=4, kmeans_data=x[rows], verbose=0)
model = lk.input_model(x.shape[1:])
model.compile(optimizer=keras.optimizers.Adam(3e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
trainer.begin(model)
history = model.fit(x[rows], y[rows], batch_size=32, epochs=trainer.total_epochs, callbacks=[trainer],
                    shuffle=False, verbose=0)
logits = np.asarray(model(x_test, training=False))  # predict() fails under DataParallel (see above)
out["test_accuracy"] = float(np.mean(logits.argmax(axis=1) == y_test))
out["purity"] = lk.stage_purities(lk.assignments(model, x_test), latents_test)
out["kmeans_points"] = sum(trainer.stage_results[0]["kmeans_counts"])
out["weights"] = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()
print("RESULT " + json.dumps(out), flush=True)
"""


def test_kmeans_and_growth_across_two_processes():
    r0, r1 = _run_two_processes(GROWTH_WORKER, timeout=400)
    for r in (r0, r1):
        # All points: the same clustering as one process on all points, up to float rounding of the sums.
        assert r["km_max_diff"] < 1e-4
        assert r["km_counts"][0] == r["km_counts"][1]
        np.testing.assert_allclose(r["km_inertia"][0], r["km_inertia"][1], rtol=1e-6)
        assert r["km_points"] == [3000, 3000]
        assert r["km2_points"] == [600, 3000]  # 2 x ceil(6 * 100 / 2) sampled, of all 3,000
        assert r["test_accuracy"] >= 0.95
        assert min(r["purity"]) >= 0.95
    assert r0["km_centers"] == r1["km_centers"]
    assert r0["km2_centers"] == r1["km2_centers"]
    # Stage 1's k-means counted both processes' samples: 2 x 3,072 = K x max_points_per_centroid (24 x 256).
    assert r0["kmeans_points"] == r1["kmeans_points"] == 24 * 256
    assert r0["weights"] == r1["weights"]  # one model: centroids, frozen and trained weights alike
