"""Benchmark (GPU, JAX backend): our Lloyd step against the card's own matrix-multiply rate.

Run with `KERAS_BACKEND=jax` on a machine with a GPU (see `benchmarks/gpu.sh`).
For each shape (N points, D features, K clusters) it

* times the compiled step `layerwise_keras.clustering.kernels.lloyd_step` under
  `jax.jit` on device-resident data, one call on all N points (distances,
  argmin, per-cluster sums, counts and inertia), at JAX's default float32
  matmul precision (TF32 on Hopper) and at `"highest"` (true float32);
  TFLOP/s counts 2*N*K*D per step, and it is compared with the card's matmul
  rate at the same precision (a square `size`^3 matmul, best of 5 after a warm-up);
* runs 10 Lloyd iterations on the device from the same initial centroids at
  each precision and compares the clusterings (share of points with the same
  final assignment, relative inertia difference): does TF32 give the same
  clustering as float32?
* times our `KMeans.fit` (host-streamed chunks of `batch_size` rows, 10
  iterations, all points) to show what the host <-> device streaming costs.

Writes `<output>/kmeans_gpu.json` and `.md`.

Usage:
    KERAS_BACKEND=jax python benchmarks/kmeans_gpu.py [--output benchmarks/results] [--quick]
"""

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

from _common import RESULTS, commit, now, write_results  # noqa: E402

SHAPES = {"small": (500_000, 64, 256), "cifar": (2_000_000, 128, 1024)}
PRECISIONS = ("default", "highest")


def _best_seconds(fn, repeats=5):
    fn()  # warm-up (compilation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_rates(size):
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    a = jax.random.normal(key, (size, size), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
    flops = 2.0 * size ** 3
    rates = {}
    for name, precision, dtype in (("float32_highest", "highest", jnp.float32),
                                   ("float32_default_tf32", "default", jnp.float32),
                                   ("bfloat16", "default", jnp.bfloat16)):
        fa, fb = a.astype(dtype), b.astype(dtype)
        mm = jax.jit(lambda x, y, p=precision: jnp.matmul(x, y, precision=p))
        rates[name] = flops / _best_seconds(lambda: mm(fa, fb).block_until_ready()) / 1e12
    return rates


def _lloyd_on_device(step, x, w, init, iters):
    import jax.numpy as jnp

    centroids = init
    for _ in range(iters):
        sums, counts, _, _, _ = step(x, w, centroids)
        centroids = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centroids)
    _, _, inertia, _, assign = step(x, w, centroids)
    return np.asarray(assign), float(inertia)


def run_shape(name, n, d, k, rates, iters, fit_rows):
    import jax
    import jax.numpy as jnp

    from layerwise_keras.clustering.kernels import lloyd_step
    from layerwise_keras.clustering.kmeans import KMeans

    rng = np.random.default_rng(0)
    centers = rng.normal(0.0, 1.0, (k, d)).astype(np.float32) * 3.0
    labels = rng.integers(0, k, n)
    x_host = centers[labels] + rng.normal(0.0, 1.0, (n, d)).astype(np.float32)
    init_host = x_host[rng.choice(n, k, replace=False)]
    x, w, init = jnp.asarray(x_host), jnp.ones((n,), jnp.float32), jnp.asarray(init_host)
    flops = 2.0 * n * k * d
    out = {"shape": name, "n": n, "d": d, "k": k}
    clusterings = {}
    for precision in PRECISIONS:
        with jax.default_matmul_precision(precision):
            step = jax.jit(lloyd_step)
            seconds = _best_seconds(lambda: jax.block_until_ready(step(x, w, init)))
            clusterings[precision] = _lloyd_on_device(step, x, w, init, iters)
        ceiling = rates["float32_highest" if precision == "highest" else "float32_default_tf32"]
        out[f"step_ms_{precision}"] = seconds * 1e3
        out[f"step_tflops_{precision}"] = flops / seconds / 1e12
        out[f"step_share_of_matmul_{precision}"] = flops / seconds / 1e12 / ceiling
    (a_def, i_def), (a_hi, i_hi) = clusterings["default"], clusterings["highest"]
    out["same_assignment_share"] = float(np.mean(a_def == a_hi))
    out["inertia_rel_diff"] = abs(i_def - i_hi) / i_hi
    del x, w
    # Our KMeans class as a user calls it: host-side streaming in chunks of fit_rows.
    km = KMeans(k, init=init_host, max_iter=iters, tol=0.0, max_points_per_centroid=None, n_init=1,
                batch_size=fit_rows, seed=0)
    km.fit(x_host[: fit_rows * 2])  # compile outside the timing (same chunk shape)
    km = KMeans(k, init=init_host, max_iter=iters, tol=0.0, max_points_per_centroid=None, n_init=1,
                batch_size=fit_rows, seed=0)
    start = time.perf_counter()
    km.fit(x_host)
    out["kmeans_fit_seconds"] = time.perf_counter() - start
    out["kmeans_fit_iterations"] = int(km.n_iter_)
    return out


def markdown(report):
    r = report["matmul_tflops"]
    lines = [
        "# k-means on the GPU (JAX backend): our Lloyd step vs the card's matmul rate",
        "",
        f"- command: `{report['command']}`",
        f"- commit: `{report['commit']}`, date: {report['date']}",
        f"- device: {report['device']}; jax {report['jax']}, Keras {report['keras']}",
        f"- matmul rate ({report['matmul_size']}^3, best of 5): float32 (`highest`) {r['float32_highest']:.1f} "
        f"TFLOP/s, float32 default (TF32) {r['float32_default_tf32']:.1f}, bfloat16 {r['bfloat16']:.1f}",
        "",
        "| shape (N, D, K) | step ms TF32 | TFLOP/s | % of TF32 matmul | step ms float32 | TFLOP/s | "
        "% of float32 matmul | same assignment after 10 it. | inertia rel. diff | KMeans.fit s (10 it., streamed) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["shapes"]:
        lines.append(
            f"| {s['n']:,}, {s['d']}, {s['k']} | {s['step_ms_default']:.2f} | {s['step_tflops_default']:.1f} | "
            f"{s['step_share_of_matmul_default']:.0%} | {s['step_ms_highest']:.2f} | {s['step_tflops_highest']:.1f} | "
            f"{s['step_share_of_matmul_highest']:.0%} | {s['same_assignment_share']:.4%} | "
            f"{s['inertia_rel_diff']:.2e} | {s['kmeans_fit_seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for a CPU smoke run")
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args(argv)
    import jax
    import keras

    shapes = {"tiny": (20_000, 16, 32)} if args.quick else SHAPES
    size = 512 if args.quick else 8192
    start = time.perf_counter()
    rates = matmul_rates(size)
    report = {
        "command": "KERAS_BACKEND=jax python benchmarks/kmeans_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": commit(), "date": now(), "device": str(jax.devices()[0].device_kind),
        "jax": jax.__version__, "keras": keras.__version__, "matmul_size": size, "matmul_tflops": rates,
        "quick": args.quick,
        "shapes": [run_shape(name, *shape, rates, args.iters, fit_rows=min(shape[0], 262_144))
                   for name, shape in shapes.items()],
    }
    report["total_seconds"] = time.perf_counter() - start
    write_results(args.output, "kmeans_gpu" + ("_quick" if args.quick else ""), report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
