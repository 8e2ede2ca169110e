"""Benchmark: our compiled Lloyd iterations vs scikit-learn and faiss-cpu.

For each shape, one seeded Gaussian mixture (float32) is generated once, and
the same initial centroids (K distinct data points, seeded) are given to

* ours: `layerwise_keras.clustering.kmeans.KMeans(init=centroids, max_iter=I, tol=0,
  max_points_per_centroid=None, n_init=1)` (all points, no subsampling);
* scikit-learn: `sklearn.cluster.KMeans(init=centroids, n_init=1,
  max_iter=I, tol=0, algorithm="lloyd")`;
* faiss-cpu (if installed): `faiss.Kmeans(D, K, niter=I,
  max_points_per_centroid=N)` (no subsampling), `train(x, init_centroids=...)`.

All three run I Lloyd iterations on the same data.  Each is first warmed up on
a slice of the data (so graph tracing / XLA compilation and thread-pool
start-up are not timed; our first-call overhead is reported separately).
Two timings are taken per implementation:

* "Lloyd s": the I Lloyd iterations only -- from the start of the first
  assignment pass to the end of the I-th centroid update (I assignment passes
  + I updates).  Ours and scikit-learn's are taken by timing their passes
  (ours: the `KMeans.on_pass` hook, given the start and end of every
  assignment pass; scikit-learn: a timer wrapped around
  `sklearn.cluster._kmeans.lloyd_iter_chunked_dense`), faiss's
  is its own `iteration_stats[-1]["time"]` (cumulative time at the end of the
  last iteration, which also covers its short set-up).
* "fit s": the whole call.  Ours: `fit` = one scan (count + NaN/Inf check),
  one float64 moments pass (for `tol`), one copy of the points into a
  padded backend tensor, the I iterations and a last assignment pass for
  `inertia_`/`counts_`.  scikit-learn: `fit` = input
  validation and copy, mean-centering, row norms, the I iterations, a last
  E-step and the inertia.  faiss: `train` = NaN check and the I iterations
  (no last pass).

On a shared CPU, timings are noisy; each timed fit is repeated (up to 3
runs, while the runs so far took less than `--repeat-budget` seconds; so the
full-size shapes run once) and the run with the fastest Lloyd time is kept.

GFLOP/s counts 2*N*K*D flops per iteration (the distance matmul) over the
Lloyd seconds.  The final centroids of each implementation are scored with one
common function (float32 matmul for the nearest centroid, float64 squared
distances), and ours and faiss's inertia must be within 0.1 % of
scikit-learn's.  The machine's float32 matmul rate (NumPy and jit-compiled
TensorFlow, 4096x4096, best of 3, and at the Lloyd step's own chunk shape) is
reported as the ceiling.

Writes `benchmarks/results/kmeans.{json,md}` (`kmeans_quick.*` with
`--quick`), with the command, commit, machine and date.

Usage:
    python benchmarks/kmeans.py [--shapes small,cifar] [--iters 10] [--quick] [--repeat-budget 20]
"""

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
import warnings

ENV_PREFIXES = ("OMP_", "OPENBLAS_", "MKL_", "GOTO", "KMP_", "BLIS_", "XLA_", "TF_NUM_", "TF_XLA",
                "TF_ENABLE_ONEDNN", "TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND", "GOMP_")
# The caller's thread-related settings, before any library sets its own (TF, faiss set KMP_* on import).
ENV_AT_START = {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# benchmarks/ is sys.path[0] when this file runs as a script
from _common import commit, cpu_description, now, write_results  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# name -> (N, D, K)
SHAPES = {"small": (500_000, 64, 256), "cifar": (2_000_000, 128, 1024)}
QUICK_SHAPES = {"small": (50_000, 32, 64), "cifar": (100_000, 64, 256)}
TOLERANCE = 1e-3  # relative inertia difference allowed vs scikit-learn
TARGETS = {"sklearn": 1.0, "faiss": 1.2}  # ours' time / peer's time, at most




def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def machine_info():
    import keras
    import sklearn
    import tensorflow as tf
    from threadpoolctl import threadpool_info

    from layerwise_keras.runs.machine import cpu_model

    faiss = _faiss()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "sklearn": sklearn.__version__,
        "faiss": faiss.__version__ if faiss else None,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "env_at_start": ENV_AT_START,
        "env_after_imports": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
        "threads": {
            "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "faiss_omp": faiss.omp_get_max_threads() if faiss else None,
            "threadpoolctl": [
                {k: m.get(k) for k in ("user_api", "internal_api", "prefix", "num_threads", "version",
                                       "architecture")} | {"file": os.path.basename(m.get("filepath", "")),
                   "package": os.path.basename(os.path.dirname(m.get("filepath", ""))).removesuffix(".libs")}
                for m in threadpool_info()
            ],
        },
    }


# --------------------------------------------------------------------------
# Data, scoring, ceiling
# --------------------------------------------------------------------------


def make_data(n, d, k, seed, spread=1.0, noise=1.5, chunk=262_144):
    """Gaussian mixture: k centers ~ N(0, spread^2 I), points = center + N(0, noise^2 I), float32."""
    rng = np.random.default_rng(seed)
    centers = (rng.standard_normal((k, d), dtype=np.float32) * np.float32(spread))
    x = np.empty((n, d), np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        labels = rng.integers(k, size=stop - start)
        block = x[start:stop]
        rng.standard_normal(out=block, dtype=np.float32)
        block *= np.float32(noise)
        block += centers[labels]
    init = x[np.sort(rng.choice(n, k, replace=False))].copy()
    return x, init


def inertia_of(x, centroids, chunk=65_536):
    """Common scorer: nearest centroid by float32 matmul, squared distance in float64."""
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    c_sq = np.einsum("ij,ij->i", c, c)
    c64 = c.astype(np.float64)
    total = 0.0
    for start in range(0, x.shape[0], chunk):
        xb = x[start:start + chunk]
        dist = xb @ c.T
        dist *= -2.0
        dist += c_sq
        a = np.argmin(dist, axis=1)
        diff = xb.astype(np.float64) - c64[a]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


def _best_rate(fn, flops, repeats=3, min_seconds=0.3):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        reps, start = 0, time.perf_counter()
        while True:
            fn()
            reps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / reps)
    return flops / best / 1e9


def matmul_ceiling(size=4096, shapes=()):
    """float32 matmul GFLOP/s: NumPy and jit-compiled TensorFlow, square and at the Lloyd chunk shapes."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    out = {"square_size": size}
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    flops = 2.0 * size ** 3
    out["numpy_gflops"] = _best_rate(lambda: np.dot(a, b), flops, min_seconds=0.0)
    tmm = tf.function(tf.linalg.matmul, jit_compile=True)
    ta, tb = tf.constant(a), tf.constant(b)
    out["tensorflow_gflops"] = _best_rate(lambda: tmm(ta, tb).numpy(), flops, min_seconds=0.0)
    out["chunk_shapes"] = []
    for rows, d, k in shapes:
        xa = rng.standard_normal((rows, d), dtype=np.float32)
        ct = np.ascontiguousarray(rng.standard_normal((k, d), dtype=np.float32).T)
        flops = 2.0 * rows * d * k
        txa, tct = tf.constant(xa), tf.constant(ct)
        out["chunk_shapes"].append({
            "rows": rows, "d": d, "k": k,
            "numpy_gflops": _best_rate(lambda: np.dot(xa, ct), flops),
            "tensorflow_gflops": _best_rate(lambda: tmm(txa, tct).numpy(), flops),
        })
    return out


# --------------------------------------------------------------------------
# The three implementations
# --------------------------------------------------------------------------


def _repeat(timed, budget):
    """Runs `timed()` at least once and up to 3 times while the total stays under `budget` seconds.

    Returns the run with the smallest Lloyd time, with every run's Lloyd and fit times added (on a shared
    CPU the minimum is the least disturbed run; the full-size shapes run once).
    """
    runs, spent = [], 0.0
    while not runs or (len(runs) < 3 and spent < budget):
        t0 = time.perf_counter()
        runs.append(timed())
        spent += time.perf_counter() - t0
    best = min(runs, key=lambda r: r["lloyd_seconds"])
    best["runs"] = len(runs)
    best["all_lloyd_seconds"] = [r["lloyd_seconds"] for r in runs]
    best["all_fit_seconds"] = [r["fit_seconds"] for r in runs]
    return best


def run_ours(x, init, iters, warm, budget):
    from layerwise_keras.clustering.kmeans import KMeans

    km = KMeans(n_clusters=init.shape[0], init=init, max_iter=iters, tol=0.0, max_points_per_centroid=None,
                n_init=1, seed=0)
    with warnings.catch_warnings():  # the slice may leave clusters empty: not what is measured
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        km.fit(warm)  # traces (and, with XLA, compiles) the step (same padded chunk shape as the timed fit)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        km.fit(warm)
        second = time.perf_counter() - t0
        # A third, smaller fit: the device-resident pass (one compiled call over [chunks, rows, D]) and the
        # moved-points update are then traced for any number of chunks / moved points (tf.function relaxes
        # the shape on the second distinct one), so no tracing falls into the timed fits.
        km.fit(warm[: warm.shape[0] // 2])

    def timed():
        passes = []  # (start, end) of every assignment pass

        def on_pass(start, end):  # KMeans' pass hook: time.perf_counter() at the start and end of each pass
            passes.append((start, end))

        km.on_pass = on_pass  # for this fit only
        try:
            t0 = time.perf_counter()
            km.fit(x)
            fit_s = time.perf_counter() - t0
        finally:
            km.on_pass = None
        # passes = n_iter Lloyd passes, then the final scoring pass
        return {
            "impl": "ours",
            "n_iter": km.n_iter_,
            "converged": km.converged_,
            "n_reseeded": km.n_reseeded_,
            "lloyd_seconds": passes[-1][0] - passes[0][0],
            "fit_seconds": fit_s,
            "pass_seconds": [e - s for s, e in passes],
            "warmup_first_fit_seconds": first,
            "warmup_second_fit_seconds": second,
            "first_call_overhead_seconds": first - second,
            "own_inertia": km.inertia_,
            "centroids": km.cluster_centers_,
        }

    return _repeat(timed, budget)


def run_sklearn(x, init, iters, warm, budget):
    from sklearn.cluster import KMeans
    from sklearn.cluster import _kmeans as skk

    def make():
        return KMeans(n_clusters=init.shape[0], init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd",
                      random_state=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make().fit(warm)
    inner = skk.lloyd_iter_chunked_dense

    def timed():
        calls = []  # (start, end, update_centers)

        def timed_iter(*args, **kwargs):
            start = time.perf_counter()
            result = inner(*args, **kwargs)
            calls.append((start, time.perf_counter(), kwargs.get("update_centers", True)))
            return result

        skk.lloyd_iter_chunked_dense = timed_iter  # looked up by _kmeans_single_lloyd at call time
        try:
            km = make()
            t0 = time.perf_counter()
            km.fit(x)
            fit_s = time.perf_counter() - t0
        finally:
            skk.lloyd_iter_chunked_dense = inner
        updates = [c for c in calls if c[2]]
        e_step = [c for c in calls if not c[2]]
        # end of the I-th update = start of the final E-step (or end of the last update without one)
        return {
            "impl": "sklearn",
            "n_iter": int(km.n_iter_),
            "lloyd_seconds": (e_step[0][0] if e_step else updates[-1][1]) - updates[0][0],
            "fit_seconds": fit_s,
            "pass_seconds": [e - s for s, e, _ in calls],
            "own_inertia": float(km.inertia_),
            "centroids": km.cluster_centers_.astype(np.float32),
        }

    return _repeat(timed, budget)


def run_faiss(faiss, x, init, iters, warm, budget):
    def make(n):
        return faiss.Kmeans(x.shape[1], init.shape[0], niter=iters, max_points_per_centroid=max(n, 256),
                            seed=0, verbose=False, spherical=False)

    make(warm.shape[0]).train(warm, init_centroids=init)

    def timed():
        km = make(x.shape[0])
        t0 = time.perf_counter()
        km.train(x, init_centroids=init)
        fit_s = time.perf_counter() - t0
        stats = km.iteration_stats
        return {
            "impl": "faiss",
            "n_iter": len(stats),
            "n_split": int(sum(s["nsplit"] for s in stats)),
            "lloyd_seconds": stats[-1]["time"],
            "search_seconds": stats[-1]["time_search"],
            "fit_seconds": fit_s,
            "own_inertia_before_last_update": float(km.obj[-1]),
            "centroids": np.ascontiguousarray(km.centroids, dtype=np.float32),
        }

    return _repeat(timed, budget)


def run_shape(name, n, d, k, iters, seed, faiss, budget):
    t_gen = time.perf_counter()
    x, init = make_data(n, d, k, seed)
    gen_s = time.perf_counter() - t_gen
    warm = x[: min(n, max(32_768, 40 * k))]  # >= faiss's 39 points per centroid, >= 2 of our chunks
    flops_iter = 2.0 * n * k * d
    load = {"before": os.getloadavg()}
    results = []
    runners = [run_ours, run_sklearn] + ([lambda *a: run_faiss(faiss, *a)] if faiss else [])
    for runner in runners:
        gc.collect()
        res = runner(x, init, iters, warm, budget)
        print(f"  {name}: {res['impl']}: lloyd {res['all_lloyd_seconds']} s, fit {res['all_fit_seconds']} s, "
              f"{res['n_iter']} iterations", flush=True)
        results.append(res)
    load["after_runs"] = os.getloadavg()
    ref = None
    for res in results:
        res["inertia"] = inertia_of(x, res.pop("centroids"))
        if res["impl"] == "sklearn":
            ref = res["inertia"]
    for res in results:
        res["rel_diff_vs_sklearn"] = (res["inertia"] - ref) / ref
        res["inertia_ok"] = abs(res["rel_diff_vs_sklearn"]) <= TOLERANCE
        res["iterations_ok"] = res["n_iter"] == iters
        res["seconds_per_iter"] = res["lloyd_seconds"] / res["n_iter"]
        res["gflops"] = flops_iter * res["n_iter"] / res["lloyd_seconds"] / 1e9
    by = {r["impl"]: r for r in results}
    ratios = {}
    for peer in ("sklearn", "faiss"):
        if peer in by:
            ratios[peer] = {
                "lloyd": by["ours"]["lloyd_seconds"] / by[peer]["lloyd_seconds"],
                "fit": by["ours"]["fit_seconds"] / by[peer]["fit_seconds"],
            }
            ratios[peer]["target"] = TARGETS[peer]
            ratios[peer]["met"] = ratios[peer]["lloyd"] <= TARGETS[peer]
    warm_n = warm.shape[0]
    del x, init, warm
    gc.collect()
    return {
        "shape": name, "n": n, "d": d, "k": k, "iters": iters, "seed": seed,
        "flops_per_iter": flops_iter, "data_seconds": gen_s, "warmup_points": int(warm_n), "loadavg": load,
        "results": results, "ratios": ratios,
    }


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def _fmt(v, f="{:.2f}"):
    return "—" if v is None else f.format(v)


def markdown(report):
    m = report["machine"]
    ceil = report["ceiling"]
    end = report["ceiling_end"]
    title = "# k-means: our compiled Lloyd iterations vs scikit-learn and faiss-cpu"
    lines = [
        title + (" (QUICK MODE: small shapes, not a result)" if report["quick"] else ""),
        "",
        f"- command: `{report['command']}`",
        f"- commit: `{report['commit']}`, date: {report['date']}, total wall time {report['total_seconds']:.0f} s",
        f"- machine: {cpu_description(m)}, no GPU; "
        f"TensorFlow {m['tensorflow']}, Keras {m['keras']} ({m['backend']} backend), scikit-learn {m['sklearn']}, "
        f"faiss-cpu {m['faiss'] or 'not installed'}, NumPy {m['numpy']}",
        f"- threads: TF intra-op {m['threads']['tf_intra_op'] or 'default (all cores)'}, faiss OpenMP "
        f"{m['threads']['faiss_omp']}, "
        + ", ".join(f"{t['internal_api']} ({t['package']}) {t['num_threads']}" for t in m["threads"]["threadpoolctl"])
        + "; thread-related environment variables set by the caller: "
        + (", ".join(f"`{k}={v}`" for k, v in m["env_at_start"].items()) or "none")
        + " (after imports: "
        + (", ".join(f"`{k}={v}`" for k, v in m["env_after_imports"].items()) or "none") + ")",
        f"- float32 matmul ceiling ({ceil['square_size']}², best of 3, at the start / at the end of the run): "
        f"NumPy {ceil['numpy_gflops']:.0f} / {end['numpy_gflops']:.0f} GFLOP/s, TensorFlow (jit) "
        f"{ceil['tensorflow_gflops']:.0f} / {end['tensorflow_gflops']:.0f} GFLOP/s; at our step's chunk shape "
        + "; ".join(f"[{c['rows']}×{c['d']}]·[{c['d']}×{c['k']}]: NumPy {c['numpy_gflops']:.0f}, "
                    f"TF {c['tensorflow_gflops']:.0f}" for c in ceil["chunk_shapes"]),
        "",
        f"Same data (seeded Gaussian mixture, float32), same initial centroids (K distinct data points), "
        f"{report['iters']} Lloyd iterations, all points (no subsampling). **Lloyd s**: the iterations only "
        "(first assignment pass to the last centroid update), after a warm-up on the first max(32,768, 40·K) "
        "points. **fit s**: the whole call (ours: + one scan, one moments pass, a copy into a padded backend tensor and a final scoring pass; "
        "scikit-learn: + copy, centering, norms, final E-step and inertia; faiss: + NaN check). "
        "GFLOP/s = 2·N·K·D per iteration / Lloyd s. Inertia of each final centroid set by one common "
        f"function; rel. diff vs scikit-learn must be ≤ {TOLERANCE:.1%}. Timed fits are repeated (up to 3 "
        f"runs, while they took < {report['repeat_budget']:.0f} s in all) and the fastest is kept; **runs** "
        "says how many. Ratios are time ratios ours / peer (> 1: we are slower). The load average includes "
        "this benchmark's own threads; above ~2 on this machine, another process competed for the cores.",
        "",
        "| shape (N, D, K) | impl | iterations | runs | Lloyd s | s / iter | GFLOP/s | fit s | inertia | "
        "rel. diff vs sklearn | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["shapes"]:
        for r in s["results"]:
            ok = r["inertia_ok"] and r["iterations_ok"]
            lines.append(
                f"| {s['shape']} ({s['n']:,}, {s['d']}, {s['k']}) | {r['impl']} | {r['n_iter']} | {r['runs']} | "
                f"{r['lloyd_seconds']:.2f} | {r['seconds_per_iter']:.3f} | {r['gflops']:.1f} | "
                f"{r['fit_seconds']:.2f} | {r['inertia']:.6g} | {r['rel_diff_vs_sklearn']:+.2e} | "
                f"{'yes' if ok else 'NO'} |"
            )
    lines += [
        "",
        "| shape | ours / sklearn (Lloyd) | ours / faiss (Lloyd) | ours / sklearn (fit) | ours / faiss (fit) | "
        "our first-call overhead s | empty clusters fixed (ours / faiss) | 1-min load avg before → after | "
        "targets met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    all_met = True
    for s in report["shapes"]:
        r = s["ratios"]
        ours = next(x for x in s["results"] if x["impl"] == "ours")
        met = all(v["met"] for v in r.values()) and len(r) == 2
        all_met &= met
        verdict = ", ".join(f"{p} {'yes' if v['met'] else 'no'}" for p, v in r.items())
        lines.append(
            f"| {s['shape']} | {_fmt(r.get('sklearn', {}).get('lloyd'))} | {_fmt(r.get('faiss', {}).get('lloyd'))} | "
            f"{_fmt(r.get('sklearn', {}).get('fit'))} | {_fmt(r.get('faiss', {}).get('fit'))} | "
            f"{ours['first_call_overhead_seconds']:.2f} | {ours['n_reseeded']} / "
            f"{next((x['n_split'] for x in s['results'] if x['impl'] == 'faiss'), '—')} | "
            f"{s['loadavg']['before'][0]:.2f} → {s['loadavg']['after_runs'][0]:.2f} | {verdict or '—'} |"
        )
    lines += [
        "",
        f"Targets (issue 5): our Lloyd time ≤ {TARGETS['sklearn']:.1f}× scikit-learn's and ≤ "
        f"{TARGETS['faiss']:.1f}× faiss's at every shape — **{'met' if all_met else 'not met'}**"
        + ("" if report["machine"]["faiss"] else " (faiss not installed: not checked)") + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="small,cifar", help="comma-separated: small, cifar")
    parser.add_argument("--iters", type=int, default=10, help="Lloyd iterations (all implementations)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat-budget", type=float, default=20.0,
                        help="repeat each timed fit (up to 3 runs, keeping the fastest) while the runs so far "
                             "took less than this many seconds")
    parser.add_argument("--quick", action="store_true", help="smoke mode: N=50k/D=32/K=64 and N=100k/D=64/K=256")
    parser.add_argument("--output", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)
    table = QUICK_SHAPES if args.quick else SHAPES
    names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in names:
        if s not in table:
            parser.error(f"unknown shape {s!r}; choose from {', '.join(table)}")
    stem = "kmeans_quick" if args.quick else "kmeans"
    faiss = _faiss()
    if faiss is None:
        print("faiss-cpu is not installed: benchmarking against scikit-learn only", file=sys.stderr)
    start = time.perf_counter()
    started_at = commit()  # the code that runs, whatever is committed while it does
    date = now()
    machine = machine_info()
    from layerwise_keras.clustering.dispatch import chunk_rows

    # the rows of our compiled step at each K (KMeans' default batch_size=None)
    ceiling = matmul_ceiling(shapes=[(chunk_rows(None, table[s][2]), table[s][1], table[s][2]) for s in names])
    print(f"ceiling: {json.dumps(ceiling)}", flush=True)
    shapes = []
    for s in names:
        n, d, k = table[s]
        print(f"shape {s}: N={n} D={d} K={k}, {args.iters} iterations", flush=True)
        shapes.append(run_shape(s, n, d, k, args.iters, args.seed, faiss, args.repeat_budget))
    ceiling_end = matmul_ceiling()
    report = {
        "command": ("python benchmarks/kmeans.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
        "commit": started_at,
        "date": date,
        "machine": machine,
        "quick": args.quick,
        "iters": args.iters,
        "repeat_budget": args.repeat_budget,
        "tolerance": TOLERANCE,
        "targets": TARGETS,
        "ceiling": ceiling,
        "ceiling_end": ceiling_end,
        "total_seconds": time.perf_counter() - start,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "shapes": shapes,
    }
    write_results(args.output, stem, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
