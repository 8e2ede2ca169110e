"""Where k-means reads its points from: an in-memory array, a device-resident padded tensor, or a streamed `tf.data.Dataset`.
"""

import keras
import numpy as np


def _is_dataset(x):
    return hasattr(x, "as_numpy_iterator") and not isinstance(x, np.ndarray)


def _check_points_array(arr, what, origin=""):
    """Validates rank and dtype of a 2-D point array; returns it unchanged."""
    if arr.ndim != 2:
        hint = ""
        if origin == "dataset":
            hint = (
                " (a tf.data.Dataset element; datasets must yield batches, "
                "e.g. ds.batch(1024))"
                if arr.ndim < 2
                else " (a tf.data.Dataset element)"
            )
        elif arr.ndim > 2:
            hint = "; reshape it yourself, e.g. x.reshape(-1, x.shape[-1])"
        raise ValueError(
            "k-means expects 2-D input [n_points, n_features], got shape "
            f"{tuple(arr.shape)} for the {what}{hint}."
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"k-means expects numeric (real-valued) input, got dtype "
            f"{arr.dtype} for the {what}."
        )
    return arr


class ArraySource:
    """Chunk source over an in-memory array.

    Args:
        x: array-like `[n_points, n_features]`.
        what: name of the input, for error messages.
        validated: skip validation (for internal float32 arrays).
    """

    is_dataset = False

    def __init__(self, x, what="input", validated=False):
        if not validated:
            try:
                x = np.asarray(x)
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"Could not convert the {what} to a numeric array: {e}"
                ) from e
            _check_points_array(x, what)
        self.array = x
        self.n_points = x.shape[0]
        self.dim = x.shape[1]

    def chunks(self, rows):
        """Yields float32 C-contiguous chunks of `rows` rows (last may be short)."""
        for start in range(0, self.n_points, rows):
            yield np.ascontiguousarray(
                self.array[start : start + rows], dtype=np.float32
            )


class ResidentPoints:
    """An in-memory point set held as one backend tensor for the whole fit.

    Lloyd's iterations on an array (the whole array, or the sample drawn from
    it) do not stream the points from the host on every pass: the points are
    converted once, padded with zero rows to whole chunks, and each pass is
    one compiled call over all chunks (`resident_pass`).  The per-cluster
    sums and counts are kept up to date incrementally: after a pass only the
    points whose nearest centroid changed are gathered and moved between
    clusters (`sums_delta`); the running totals are float64 on the host.

    Args:
        array: float32 C-contiguous NumPy array `[n, D]` (already validated).
        rows: rows per chunk.

    Example:

    >>> points = ResidentPoints(np.zeros((10, 2), np.float32), rows=4)
    >>> points.n_points, tuple(points.chunks3d.shape)
    (10, (3, 4, 2))
    """

    is_dataset = False

    def __init__(self, array, rows):
        n, d = array.shape
        n_chunks = -(-n // rows)
        self.array = array
        self.n_points, self.dim, self.rows = n, d, rows
        if n_chunks * rows != n:
            padded = np.zeros((n_chunks * rows, d), np.float32)
            padded[:n] = array
        else:
            padded = array
        self.x = keras.ops.convert_to_tensor(padded)
        self.chunks3d = keras.ops.reshape(self.x, (n_chunks, rows, d))
        sq = np.einsum("ij,ij->i", padded, padded)  # constant: computed once, not on every pass
        self.chunks_sq = keras.ops.convert_to_tensor(sq.reshape(n_chunks, rows))
        self.assign = self.sums = self.counts = None

    def reset(self, n_clusters):
        """Starts a new run: no point assigned (dummy cluster `n_clusters`), zero sums and counts."""
        self.assign = np.full(self.n_points, n_clusters, np.int32)
        self.sums = np.zeros((n_clusters, self.dim), np.float64)
        self.counts = np.zeros(n_clusters, np.float64)

    def chunks(self, rows):
        """Yields the host array in chunks of `rows` rows (as `ArraySource.chunks`)."""
        return ArraySource(self.array, validated=True).chunks(rows)


class _DatasetSource:
    """Chunk source over a `tf.data.Dataset` of `[b, n_features]` batches.

    The dataset's batches are re-batched to exactly `rows` rows (the last
    chunk may be shorter), so the chunks -- and hence all results -- do not
    depend on the dataset's batch size.  A dataset that is sampled gives
    the same results as the same points in an array; one that Lloyd streams
    (`max_points_per_centroid=None`) sums each chunk and an array's points
    are summed incrementally (`ResidentPoints`), so the two agree up to
    float32 rounding of the per-cluster sums.

    Args:
        ds: the dataset.
        what: name of the input, for error messages.
    """

    is_dataset = True
    n_points = None  # unknown until a pass has been made

    def __init__(self, ds, what="input"):
        spec = getattr(ds, "element_spec", None)
        if isinstance(spec, (tuple, list, dict)):
            raise ValueError(
                f"k-means expects the {what} dataset to yield single "
                f"[batch, n_features] float tensors, got element_spec {spec}; "
                "map it to the features first, e.g. ds.map(lambda x, y: x)."
            )
        self.ds = ds
        self.what = what
        self.dim = None

    def _element(self, el):
        if isinstance(el, (tuple, list, dict)):
            raise ValueError(
                f"k-means expects the {self.what} dataset to yield single "
                f"[batch, n_features] float tensors, got a {type(el).__name__}; "
                "map it to the features first, e.g. ds.map(lambda x, y: x)."
            )
        arr = _check_points_array(np.asarray(el), self.what, origin="dataset")
        if self.dim is None:
            self.dim = arr.shape[1]
        elif arr.shape[1] != self.dim:
            raise ValueError(
                f"The {self.what} dataset yields batches with different "
                f"feature dims: {self.dim} and then {arr.shape[1]}."
            )
        return np.ascontiguousarray(arr, dtype=np.float32)

    def chunks(self, rows):
        """Yields float32 chunks of exactly `rows` rows (the last may be short)."""
        buf, n_buf = [], 0
        for el in self.ds.as_numpy_iterator():
            arr = self._element(el)
            if arr.shape[0] == 0:
                continue
            if n_buf == 0 and arr.shape[0] == rows:
                yield arr
                continue
            buf.append(arr)
            n_buf += arr.shape[0]
            while n_buf >= rows:
                cat = buf[0] if len(buf) == 1 else np.concatenate(buf)
                yield cat[:rows]
                rest = cat[rows:]
                buf, n_buf = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)
        if n_buf:
            yield buf[0] if len(buf) == 1 else np.concatenate(buf)


def make_source(x, what):
    if _is_dataset(x):
        return _DatasetSource(x, what)
    return ArraySource(x, what)
