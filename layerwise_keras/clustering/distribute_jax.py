"""Several JAX processes (hosts): the collectives k-means needs, on NumPy arrays (JAX-only).

Training on several hosts uses Keras' own `keras.distribution` data-parallel
API; this module adds the few host-side collectives our k-means needs on top
of it, so that each process clusters its own shard of the points and only the
per-cluster sums, counts and inertia travel (all-reduced, never gathered to
one process).

Recipe (tested with two processes on 127.0.0.1 and JAX's CPU collectives,
`tests/test_distribute_jax.py`): on every process `i`, before any JAX
computation (a listing, not a doctest: it picks the process's Keras backend
and joins the other processes)::

    os.environ["KERAS_BACKEND"] = "jax"
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts
    keras.distribution.initialize(job_addresses="10.0.0.1:1234",      # process 0's address
                                  num_processes=2, process_id=i)
    keras.distribution.set_distribution(keras.distribution.DataParallel(
        devices=keras.distribution.list_devices(), auto_shard_dataset=False))

then build, compile and `fit` the model as usual, each process passing its
own rows (`process_rows`) with `batch_size` = the global batch size divided
by the number of processes. Keras joins the per-process batches into one
global batch (process 0's rows first), so the run sees exactly the batches
of a one-process run on the full data, and the weights stay identical on
every process. (With `auto_shard_dataset=True`, the default, `fit` takes
only a `tf.data.Dataset` of the *global* data batched by the *global* batch
size, and Keras shards it.) Under the distribution, `model.predict` fails
("Fetching value for `jax.Array` that spans non-addressable devices"):
call the model on process-local batches instead (`model(x)`), or unset the
distribution around `predict`.

Every function here is safe without `jax.distributed` (one process: no
collective runs, the arrays come back as copies) and, for `process_count`,
`process_index` and `process_rows`, without JAX installed at all.

Example (one process here, so the results are this process's own arrays):

>>> rng = np.random.default_rng(0)
>>> local_sums, local_counts = rng.normal(size=(3, 2)), np.array([4, 0, 6])
>>> sums, counts = process_sum([local_sums, local_counts])   # same on every process
>>> process_count(), np.array_equal(sums, local_sums), counts.tolist()
(1, True, [4, 0, 6])
>>> centroids = broadcast_from_first(rng.normal(size=(3, 2)))  # process 0's seeding
>>> centroids.shape, centroids.dtype
((3, 2), dtype('float64'))
"""

import functools
import zlib

import numpy as np

from layerwise_keras import compat

_AXIS = "processes"


def _jax():
    """The `jax` module, or None when it is not installed."""
    try:
        import jax
    except ImportError:
        return None
    return jax


def process_count():
    """The number of JAX processes taking part in the computation (1 when not distributed).

    Does not start JAX's backends when `jax.distributed` is not initialized
    (so `jax.distributed.initialize` can still be called afterwards), and
    returns 1 when JAX is not installed.

    Args:
        None.

    Returns:
        int >= 1.

    Example:

    >>> process_count()  # no `jax.distributed` in this process
    1
    """
    jax = _jax()
    if jax is None:
        return 1
    if not jax.distributed.is_initialized() and not compat.jax_backends_started():
        return 1
    return int(jax.process_count())


def process_index():
    """This process's index among the JAX processes, in `[0, process_count())` (0 when not distributed).

    Args:
        None.

    Returns:
        int; 0 is the coordinator (`keras.distribution.initialize`'s
        `process_id=0`).

    Example:

    >>> import os
    >>> if process_index() == 0:  # only the coordinator writes the file
    ...     model.save(os.path.join(tmp_dir, "model.keras"))
    >>> process_index(), os.listdir(tmp_dir)  # one process: it is the coordinator
    (0, ['model.keras'])
    """
    jax = _jax()
    if jax is None:
        return 0
    if not jax.distributed.is_initialized() and not compat.jax_backends_started():
        return 0
    return int(jax.process_index())


def process_rows(n, global_batch_size, index=None, count=None):
    """The row indices of `n` rows that this process feeds to `fit` under `DataParallel`.

    Keras' JAX trainer joins the processes' batches in process order into one
    global batch. With these rows (and `batch_size=global_batch_size //
    count`), global batch `b` holds exactly rows `[b * B, (b + 1) * B)` of the
    full data, `B = global_batch_size`: the batches of a one-process run with
    `shuffle=False`. Shuffling must then be done on the full data, with the
    same seed on every process, before taking the rows.

    Args:
        n: int, number of rows of the full data (the same on every process).
        global_batch_size: int, a multiple of `count` that divides `n`
            (every process must run the same number of steps).
        index: int, the process (default `process_index()`).
        count: int, the number of processes (default `process_count()`).

    Returns:
        An int64 array of `n // count` row indices.

    Example:

    Process 1 of 2 feeds the second half of every global batch of 4 rows:

    >>> process_rows(8, 4, index=1, count=2)
    array([2, 3, 6, 7])

    `x`, `y`: 128 images 27x27x1 and their labels (10 classes); with one
    process, its rows are all the rows, in order:

    >>> import keras
    >>> rows = process_rows(len(x), 64)
    >>> np.array_equal(rows, np.arange(len(x)))
    True
    >>> net = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> net.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> history = net.fit(x[rows], y[rows], batch_size=64 // process_count(), shuffle=False, verbose=0)
    >>> len(history.history["loss"])
    1
    """
    index = process_index() if index is None else int(index)
    count = process_count() if count is None else int(count)
    if global_batch_size % count or n % global_batch_size:
        raise ValueError(
            f"process_rows: the global batch size {global_batch_size} must be a multiple of the "
            f"{count} processes and divide the {n} rows."
        )
    per = global_batch_size // count
    return np.arange(n, dtype=np.int64).reshape(n // global_batch_size, count, per)[:, index].reshape(-1)


@functools.lru_cache(maxsize=None)
def _reducer(backend):
    """(devices, mesh, jitted sum over processes) with one device per process, in process order."""
    jax = _jax()
    first = {}
    for device in jax.devices(backend):
        best = first.get(device.process_index)
        if best is None or device.id < best.id:
            first[device.process_index] = device
    devices = [first[i] for i in sorted(first)]
    mesh = jax.sharding.Mesh(np.array(devices), (_AXIS,))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    summed = jax.jit(lambda xs: tuple(x.sum(axis=0) for x in xs), out_shardings=replicated)
    return devices, mesh, summed


def _x64(jax):
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # JAX < 0.7

    return enable_x64()


def _all_reduce(arrays, backend):
    """Sums same-shaped NumPy arrays over the processes with one XLA all-reduce."""
    jax = _jax()
    devices, mesh, summed = _reducer(backend)
    me = devices[jax.process_index()]
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(_AXIS))
    with _x64(jax):
        parts = tuple(
            jax.make_array_from_single_device_arrays(
                (len(devices),) + a.shape, sharding, [jax.device_put(a[None], me)]
            )
            for a in arrays
        )
        outs = summed(parts)
        return [np.array(o.addressable_data(0), dtype=a.dtype) for o, a in zip(outs, arrays)]


def _check_same(signature, what, backend):
    """Raises the same ValueError on every process unless all passed the same `signature` (a str)."""
    fp = zlib.crc32(signature.encode()) & 0xFFFFF
    total = _all_reduce([np.array([1, fp, fp * fp], dtype=np.int64)], backend)[0]
    count = int(total[0])
    if total[1] != count * fp or total[2] != count * fp * fp:
        raise ValueError(
            f"{what}: the processes passed different array shapes or dtypes "
            f"(this process, {process_index()}: {signature})."
        )


def _signature(arrays):
    return repr([(a.shape, a.dtype.str) for a in arrays])


def _as_arrays(arrays, what):
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, (list, tuple)):
        raise TypeError(f"{what} takes a list of arrays, got {type(arrays).__name__}.")
    out = []
    for a in arrays:
        a = np.asarray(a, order="C")
        if a.dtype.kind not in "biufc":
            raise TypeError(f"{what}: arrays must be numeric or bool, got dtype {a.dtype}.")
        out.append(a)
    return out


def process_sum(arrays, backend="cpu", check=True):
    """Sums a list of NumPy arrays over all JAX processes (an all-reduce: nothing is gathered).

    Every process passes arrays of the same shapes and dtypes (e.g. its
    shard's per-cluster sums, counts and inertia) and gets the same sums
    back. float64 stays float64 (the reduction runs with 64-bit types on the
    host CPU devices, whatever `jax_enable_x64` says); integers sum exactly.

    Args:
        arrays: list (or tuple) of array-likes, numeric; bool sums as int.
        backend: the JAX platform whose devices run the all-reduce (one device
            per process): "cpu" by default (host memory, exact float64; JAX's
            CPU collectives, gloo, must be on, which is the default in recent
            JAX), or e.g. "gpu" to reduce over NCCL.
        check: first checks (one small extra all-reduce) that every process
            passed the same shapes and dtypes, so a mismatch raises the same
            ValueError on every process instead of hanging or mixing data.

    Returns:
        A list of NumPy arrays, one per input, in the input's dtype (bool
        becomes int64), identical on every process. With one process: copies
        of the inputs, and no JAX computation runs.

    Example:

    One process's per-cluster sums, counts and inertia (with one process,
    the sums are copies of them):

    >>> sums = np.random.default_rng(0).normal(size=(3, 2))
    >>> counts, inertia = np.array([4, 0, 6]), 12.5
    >>> sums, counts, inertia = process_sum([sums, counts, np.float64(inertia)])
    >>> counts.tolist(), float(inertia), inertia.dtype
    ([4, 0, 6], 12.5, dtype('float64'))
    >>> centroids = sums / np.maximum(counts, 1)[:, None]
    >>> centroids.shape
    (3, 2)
    >>> process_sum([np.array([True, False])])[0]  # bool sums as int64
    array([1, 0])
    """
    arrays = _as_arrays(arrays, "process_sum")
    arrays = [a.astype(np.int64) if a.dtype.kind == "b" else a for a in arrays]
    if process_count() == 1:
        return [a.copy() for a in arrays]
    if check:
        _check_same(_signature(arrays), "process_sum", backend)
    return _all_reduce(arrays, backend) if arrays else []


def _unsigned(dtype):
    """The unsigned integer dtype whose elements tile `dtype`'s bytes."""
    width = dtype.itemsize
    return np.dtype(f"u{width}") if width in (1, 2, 4, 8) else np.dtype("u8" if width % 8 == 0 else "u1")


def _bits(a):
    """`a`'s bytes as a flat array of unsigned integers (x + 0 on them is exact)."""
    return a.reshape(-1).view(_unsigned(a.dtype))


def _from_bits(bits, dtype, shape):
    return np.asarray(bits, order="C").reshape(-1).view(dtype).reshape(shape)


def broadcast_from_first(array, backend="cpu", check=True):
    """Process 0's value of `array`, on every process (bit for bit: -0.0 and NaNs included).

    Every process passes an array of the same shape and dtype; only process
    0's values are used (e.g. the initial centroids, seeded on process 0).

    Args:
        array: an array-like (numeric or bool).
        backend: as in `process_sum`.
        check: as in `process_sum`.

    Returns:
        A NumPy array with process 0's shape, dtype and values (a copy with
        one process).

    Example:

    >>> from layerwise_keras.clustering.sampling import kmeans_plusplus
    >>> rng = np.random.default_rng(0)
    >>> sample = rng.normal(size=(100, 2)).astype(np.float32)
    >>> init = broadcast_from_first(kmeans_plusplus(sample, 4, rng) if process_index() == 0
    ...                             else np.zeros((4, 2), np.float32))
    >>> init.shape, init.dtype
    ((4, 2), dtype('float32'))
    >>> all((sample == row).all(axis=1).any() for row in init)  # process 0's seeds: points of its sample
    True
    """
    (array,) = _as_arrays([array], "broadcast_from_first")
    if process_count() == 1:
        return array.copy()
    if check:
        _check_same(_signature([array]), "broadcast_from_first", backend)
    bits = _bits(array)
    if process_index() != 0:
        bits = np.zeros_like(bits)
    # x + 0 is exact on unsigned integers, so the sum is process 0's bytes.
    out = process_sum([bits], backend=backend, check=False)[0]
    return _from_bits(out, array.dtype, array.shape)


def process_allgather(array, backend="cpu"):
    """Every process's rows of `array`, concatenated in process order, on every process.

    For small per-process sets (candidate points to re-seed empty clusters,
    the k-means++ sample), not for the points themselves. The processes may
    pass different numbers of rows; the other dimensions and the dtype must
    agree.

    Args:
        array: an array-like with at least one dimension.
        backend: as in `process_sum`.

    Returns:
        A NumPy array `[total_rows, ...]`, identical on every process.

    Example:

    >>> local_farthest_points = np.arange(6, dtype=np.float32).reshape(3, 2)
    >>> candidates = process_allgather(local_farthest_points)
    >>> candidates.shape  # one process: its own 3 rows
    (3, 2)
    >>> np.array_equal(candidates, local_farthest_points)
    True
    """
    (array,) = _as_arrays([array], "process_allgather")
    if array.ndim == 0:
        raise ValueError("process_allgather: the array needs at least one dimension (rows).")
    count = process_count()
    if count == 1:
        return array.copy()
    _check_same(repr((array.shape[1:], array.dtype.str)), "process_allgather", backend)
    index = process_index()
    rows = np.zeros(count, np.int64)
    rows[index] = array.shape[0]
    rows = process_sum([rows], backend=backend, check=False)[0]
    unsigned = _unsigned(array.dtype)
    width = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize // unsigned.itemsize
    buffer = np.zeros((count, int(rows.max()), width), unsigned)
    buffer[index, : array.shape[0]] = _bits(array).reshape(array.shape[0], width)
    buffer = process_sum([buffer], backend=backend, check=False)[0]
    out = np.concatenate([buffer[i, : rows[i]] for i in range(count)])
    return _from_bits(out, array.dtype, (-1,) + array.shape[1:])
