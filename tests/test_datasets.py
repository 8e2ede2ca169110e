"""Tests for layerwise_keras.datasets.generative and layerwise_keras.datasets."""

import collections
import sys
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

from layerwise_keras import datasets
from layerwise_keras.datasets import generative
from layerwise_keras.datasets.generative import (
    DIGITS_BLOCKS,
    DIGITS_DISTRACTOR,
    DIGITS_GLYPHS,
    DIGITS_LEVEL_NAMES,
    DIGITS_PATCHES,
    HierarchicalModel,
    from_blocks,
    hierarchical_digits,
    to_blocks,
)


def _l3_model(**kw):
    args = dict(levels=3, patch_size=2, classes_per_level=(4, 3, 2), variants_per_class=2, channels=2, seed=3)
    args.update(kw)
    return HierarchicalModel(**args)


def _function_table(keys, values):
    """Maps each key row to the set of values it occurs with."""
    table = {}
    for k, v in zip(keys, values):
        table.setdefault(k.tobytes(), set()).add(int(v))
    return table


# ---------------------------------------------------------------------------
# HierarchicalModel
# ---------------------------------------------------------------------------


def test_blocks_roundtrip():
    g = np.arange(2 * 6 * 6 * 3).reshape(2, 6, 6, 3)
    b = to_blocks(g, 3)
    assert b.shape == (2, 2, 2, 3, 3, 3)
    np.testing.assert_array_equal(b[1, 1, 0], g[1, 3:6, 0:3])
    np.testing.assert_array_equal(from_blocks(b), g)


def test_model_shapes_two_levels():
    model = HierarchicalModel()
    assert model.image_shape == (9, 9, 1)
    images, labels, latents = model.sample(64, seed=1)
    assert images.shape == (64, 9, 9, 1) and images.dtype == np.float32
    assert labels.shape == (64,) and np.issubdtype(labels.dtype, np.integer)
    assert [z.shape for z in latents] == [(64, 3, 3), (64, 1, 1)]
    assert set(np.unique(labels)) <= {0, 1}
    assert latents[0].min() >= 0 and latents[0].max() < 8
    assert latents[1].min() >= 0 and latents[1].max() < 4


def test_model_shapes_three_levels():
    model = _l3_model()
    assert model.image_shape == (8, 8, 2)
    images, labels, latents = model.sample(32, seed=0)
    assert images.shape == (32, 8, 8, 2)
    assert [z.shape for z in latents] == [(32, 4, 4), (32, 2, 2), (32, 1, 1)]
    assert model.variants[0].shape == (4, 2, 2, 2, 2)
    assert model.variants[1].shape == (3, 2, 2, 2)
    assert model.variants[2].shape == (2, 2, 2, 2)


def test_model_determinism():
    a = HierarchicalModel(seed=5).sample(200, seed=7)
    b = HierarchicalModel(seed=5).sample(200, seed=7)
    for x, y in zip(a[:2] + tuple(a[2]), b[:2] + tuple(b[2])):
        assert np.array_equal(x, y)
    c = HierarchicalModel(seed=5).sample(200, seed=8)
    assert not np.array_equal(a[0], c[0])
    d = HierarchicalModel(seed=6).sample(200, seed=7)
    assert not np.array_equal(a[0], d[0])
    # Noise is drawn last: the class structure does not depend on it.
    e = HierarchicalModel(seed=5, noise=0.0).sample(200, seed=7)
    assert np.array_equal(a[1], e[1]) and all(np.array_equal(x, y) for x, y in zip(a[2], e[2]))
    assert np.abs(a[0] - e[0]).max() > 0


@pytest.mark.parametrize("make", [lambda: HierarchicalModel(noise=0.0), lambda: _l3_model(noise=0.0)])
def test_model_latents_consistency(make):
    model = make()
    s = model.patch_size
    images, labels, latents = model.sample(300, seed=2)
    # Every s x s pixel patch is one of its level-0 class's variants.
    patches = to_blocks(images, s)  # [n, h, w, s, s, C]
    candidates = model.variants[0][latents[0]]  # [n, h, w, V, s, s, C]
    match = (candidates == patches[:, :, :, None]).all(axis=(-3, -2, -1))
    assert match.any(axis=-1).all()
    # Rebuilding the pixels from latents[0] and the matched variants reproduces the image exactly.
    rebuilt = from_blocks(np.take_along_axis(candidates, match.argmax(-1)[..., None, None, None, None], 3)[:, :, :, 0])
    np.testing.assert_array_equal(rebuilt.astype(np.float32), images)
    # Every level-i cell's block of level-(i-1) classes is one of its variants.
    for i in range(1, model.levels):
        blocks = to_blocks(latents[i - 1], s)  # [n, h, w, s, s]
        cand = model.variants[i][latents[i]]  # [n, h, w, V, s, s]
        assert (cand == blocks[:, :, :, None]).all(axis=(-2, -1)).any(axis=-1).all()
    # The label is a function of the top class.
    np.testing.assert_array_equal(labels, model.label_of_class[latents[-1][:, 0, 0]])
    assert np.array_equal(model.label_of_class, np.arange(model.classes_per_level[-1]) % model.num_labels)


def test_model_identifiability_of_variants():
    for model in (HierarchicalModel(), _l3_model(), HierarchicalModel(classes_per_level=(20, 6), channels=3)):
        pix = model.variants[0].reshape(model.classes_per_level[0], model.variants_per_class, -1).astype(int)
        C, V, _ = pix.shape
        flat = pix.reshape(C * V, -1)
        dist = np.abs(flat[:, None] - flat[None]).sum(-1)
        cls = np.repeat(np.arange(C), V)
        same = cls[:, None] == cls[None]
        assert dist[~same].min() >= 2
        assert (dist[same & ~np.eye(C * V, dtype=bool)] >= 1).all()
        for i in range(1, model.levels):
            grids = model.variants[i].reshape(-1, model.patch_size**2)
            assert len(np.unique(grids, axis=0)) == len(grids)  # all variants distinct
            assert set(np.unique(grids)) == set(range(model.classes_per_level[i - 1]))  # all children used
        with pytest.raises(ValueError):
            model.variants[0][0, 0, 0, 0, 0] = 1  # read-only


def test_model_top_classes_per_label():
    model = HierarchicalModel(classes_per_level=(8, 5), num_labels=2)
    _, labels, latents = model.sample(4000, seed=0)
    top = latents[-1][:, 0, 0]
    assert set(np.unique(top[labels == 0])) == {0, 2, 4}
    assert set(np.unique(top[labels == 1])) == {1, 3}
    assert abs(np.mean(labels) - 0.5) < 0.05


def _traced_sample(model, n):
    """`model.sample(n, seed=0)` and a Counter of what the interpreter did meanwhile.

    Every Python line executed (a loop re-runs its lines once per pass, one-line comprehensions included),
    every Python function called and every C function called from Python, keyed by where it happened.
    """
    work = collections.Counter()

    def trace(frame, event, arg):  # Python frames: "call", then each "line" (and loop pass), "return"
        work[(event, frame.f_code.co_filename, frame.f_code.co_name, frame.f_lineno)] += 1
        return trace

    def profile(frame, event, arg):  # C functions called from Python
        if event == "c_call":
            work[(event, getattr(arg, "__module__", None), getattr(arg, "__qualname__", repr(arg)))] += 1

    previous = sys.gettrace(), sys.getprofile()
    sys.settrace(trace)
    sys.setprofile(profile)
    try:
        out = model.sample(n, seed=0)
    finally:
        sys.settrace(previous[0])
        sys.setprofile(previous[1])
    return out, work


def _peak_bytes(model, n):
    """Peak bytes allocated (NumPy buffers included) while `model.sample(n, seed=0)` runs, and its output's bytes."""
    tracemalloc.start()
    try:
        images, labels, latents = model.sample(n, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, images.nbytes + labels.nbytes + sum(z.nbytes for z in latents)


@pytest.mark.parametrize("make", [HierarchicalModel, _l3_model])
def test_model_sample_is_vectorised_and_linear_in_n(make):
    """Sampling 20,000 images is one fixed sequence of array operations: no Python loop over images or cells
    (the same lines and function calls, each as often, for 10 images as for 20,000), and no intermediate larger
    than a few copies of the output (peak memory linear in n, not quadratic)."""
    model = make()
    model.sample(3, seed=0)  # first-call set-up (NumPy's lazily initialised state) is not the sampler's work
    (images, labels, latents), big = _traced_sample(model, 20000)
    assert images.shape == (20000,) + model.image_shape and labels.shape == (20000,)
    assert [z.shape for z in latents] == [(20000,) + s for s in model.latent_shapes]
    _, small = _traced_sample(model, 10)
    assert big == small, (big - small, small - big)
    assert sum(small.values()) < 1000  # a few hundred lines and calls in all, whatever n
    # Deterministic (allocation sizes, not timings): measured 2.77x the output's bytes (2.69x with three levels)
    # for every n from 2,000 to 200,000; one float32 [n, n] intermediate at n = 20,000 would be 190 times it.
    peak, out = _peak_bytes(model, 20000)
    assert peak < 4 * out, (peak, out)
    assert peak < 12 * _peak_bytes(model, 2000)[0]  # 10x the images: about 10x the memory, not 100x


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(levels=0), "levels"),
        (dict(patch_size=1), "patch_size"),
        (dict(levels=3), "one entry per level"),
        (dict(classes_per_level=(8, 1)), "num_labels"),
        (dict(noise=-0.1), "noise"),
        (dict(noise=float("nan")), "finite"),
        (dict(variants_per_class=0), "variants_per_class"),
        (dict(num_labels=0), "num_labels"),
        (dict(channels=0), "channels"),
        (dict(seed=-1), "seed"),
        (dict(levels=2.0), "integer"),
        (dict(classes_per_level=(2, 200)), "distinct"),
        (dict(classes_per_level=(600, 4)), "binary"),
        (dict(classes_per_level=(40, 2), variants_per_class=1), "never occur"),
    ],
)
def test_model_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalModel(**kwargs)


@pytest.mark.parametrize("n, seed", [(0, 0), (2.5, 0), (True, 0), (3, -1)])
def test_model_sample_bad_args(n, seed):
    with pytest.raises(ValueError):
        HierarchicalModel().sample(n, seed=seed)


def test_model_config_roundtrip():
    model = _l3_model()
    clone = HierarchicalModel(**model.get_config())
    for a, b in zip(model.variants, clone.variants):
        assert np.array_equal(a, b)
    assert "levels=3" in repr(model)


# ---------------------------------------------------------------------------
# hierarchical_digits
# ---------------------------------------------------------------------------


def test_digits_shapes_and_labels():
    images, labels, latents = hierarchical_digits(500, seed=0)
    assert images.shape == (500, 27, 27, 1) and images.dtype == np.float32
    assert set(np.unique(labels)) == set(range(10))
    assert [z.shape for z in latents] == [(500, 9, 9), (500, 3, 3), (500, 1, 1)]
    np.testing.assert_array_equal(latents[2][:, 0, 0], labels)
    assert np.isfinite(images).all()
    assert -1.5 < images.min() and images.max() < 2.5  # roughly [0, 1] plus noise
    names = DIGITS_LEVEL_NAMES
    assert len(names) == 3 and len(names[2]) == 10
    assert latents[0].max() < len(names[0]) and latents[1].max() < len(names[1])
    assert set(np.unique(latents[0])) == set(range(len(names[0])))
    assert set(np.unique(latents[1])) == set(range(len(names[1])))


def test_digits_structure_is_identifiable():
    images, labels, latents = hierarchical_digits(2000, seed=1)
    strokes, prims, top = latents
    # The 3x3 top grid determines the label.
    table = _function_table(prims.reshape(len(prims), -1), labels)
    assert all(len(v) == 1 for v in table.values())
    assert len(table) > 10  # variants: some digits have several glyphs
    # Each 3x3 block of mid-level strokes determines its primitive.
    blocks = to_blocks(strokes, 3).reshape(-1, 9)
    table = _function_table(blocks, prims.reshape(-1))
    assert all(len(v) == 1 for v in table.values())
    # ... and is one of that primitive's declared blocks.
    for key, (c,) in table.items():
        block = np.frombuffer(key, dtype=blocks.dtype).reshape(3, 3)
        assert any(np.array_equal(block, b) for b in DIGITS_BLOCKS[c])
    # Each digit's grid is one of its glyphs, and glyphs of different digits differ.
    for d in range(10):
        for g in prims[labels == d]:
            assert any(np.array_equal(g, x) for x in DIGITS_GLYPHS[d])
    all_glyphs = [g.tobytes() for gs in DIGITS_GLYPHS for g in gs]
    assert len(set(all_glyphs)) == len(all_glyphs)
    all_blocks = [b.tobytes() for bs in DIGITS_BLOCKS for b in bs]
    assert len(set(all_blocks)) == len(all_blocks)


def test_digits_pixel_patches_come_from_class_variants():
    images, labels, latents = hierarchical_digits(400, seed=2, noise=0.0, texture=0.0, distractor_rate=0.3)
    patches = to_blocks(images[..., 0], 3).reshape(-1, 3, 3)
    classes = latents[0].reshape(-1)
    is_plus = np.zeros(len(classes), dtype=bool)
    for c, variants in enumerate(DIGITS_PATCHES):
        sel = classes == c
        assert sel.any()
        ok = (patches[sel][:, None] == variants[None]).all(axis=(-2, -1)).any(axis=1)
        if c == 0:  # blank: empty, or the "+" distractor
            plus = (patches[sel] == DIGITS_DISTRACTOR).all(axis=(-2, -1))
            is_plus[sel] = plus
            ok |= plus
        assert ok.all(), f"class {DIGITS_LEVEL_NAMES[0][c]} has a foreign patch"
    rate = is_plus[classes == 0].mean()
    assert 0.25 < rate < 0.35
    # Every pixel variant of every class is used.
    for c, variants in enumerate(DIGITS_PATCHES):
        used = {p.tobytes() for p in patches[classes == c]}
        assert all(v.tobytes() in used for v in variants)


def test_digits_without_variants_use_canonical_forms():
    images, labels, latents = hierarchical_digits(300, seed=0, noise=0.0, texture=0.0, distractor_rate=0.0, variants=False)
    for d in range(10):
        for g in latents[1][labels == d]:
            np.testing.assert_array_equal(g, DIGITS_GLYPHS[d][0])
    blocks = to_blocks(latents[0], 3)
    np.testing.assert_array_equal(blocks, np.stack([b[0] for b in DIGITS_BLOCKS])[latents[1]])
    patches = to_blocks(images[..., 0], 3)
    np.testing.assert_array_equal(patches, np.stack([p[0] for p in DIGITS_PATCHES])[latents[0]])



def test_digits_determinism_and_noise_independence():
    a = hierarchical_digits(100, seed=4)
    b = hierarchical_digits(100, seed=4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert all(np.array_equal(x, y) for x, y in zip(a[2], b[2]))
    c = hierarchical_digits(100, seed=5)
    assert not np.array_equal(a[0], c[0])
    clean = hierarchical_digits(100, seed=4, noise=0.0, texture=0.0)
    assert all(np.array_equal(x, y) for x, y in zip(a[2], clean[2]))
    resid = a[0] - clean[0]
    assert 0.1 < resid.std() < 0.25


def test_digits_texture_is_smooth_and_small():
    clean = hierarchical_digits(50, seed=0, noise=0.0, texture=0.0)[0]
    textured = hierarchical_digits(50, seed=0, noise=0.0, texture=0.1)[0]
    field = (textured - clean)[..., 0]
    assert 0 < np.abs(field).max() <= 0.1 + 1e-6
    assert np.abs(np.diff(field, axis=1)).max() < 0.05  # smooth: small pixel-to-pixel steps


@pytest.mark.parametrize(
    "kwargs",
    [dict(n=0), dict(n=5, noise=-1.0), dict(n=5, distractor_rate=1.5), dict(n=5, variants="yes"),
     dict(n=5, texture=float("inf")), dict(n=5, seed=-2)],
)
def test_digits_bad_args(kwargs):
    with pytest.raises(ValueError):
        hierarchical_digits(**kwargs)


# ---------------------------------------------------------------------------
# datasets: validation, tf.data, grids
# ---------------------------------------------------------------------------


def test_reexports():
    assert datasets.HierarchicalModel is generative.HierarchicalModel
    assert datasets.hierarchical_digits is generative.hierarchical_digits


def test_from_arrays_batches():
    x = np.random.default_rng(0).normal(size=(10, 9, 9, 1)).astype(np.float32)
    y = np.arange(10) % 3
    ds = datasets.from_arrays(x, y, batch_size=4)
    shapes = [(tuple(a.shape), tuple(b.shape)) for a, b in ds]
    assert shapes == [((4, 9, 9, 1), (4,)), ((4, 9, 9, 1), (4,)), ((2, 9, 9, 1), (2,))]
    first_x, first_y = next(iter(ds))
    np.testing.assert_array_equal(first_x.numpy(), x[:4])
    np.testing.assert_array_equal(first_y.numpy(), y[:4])
    ds = datasets.from_arrays(x, batch_size=4, drop_remainder=True)
    assert [tuple(a.shape) for a in ds] == [(4, 9, 9, 1), (4, 9, 9, 1)]


def test_from_arrays_shuffle_is_seeded():
    x = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1)
    y = np.arange(20)

    def epochs(seed):
        ds = datasets.from_arrays(x, y, batch_size=20, shuffle=True, seed=seed)
        return [next(iter(ds))[1].numpy() for _ in range(2)]

    a, b = epochs(1), epochs(1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])  # reshuffled each iteration
    assert sorted(a[0]) == list(range(20))


def test_from_arrays_errors():
    x = np.zeros((6, 4, 4, 1), dtype=np.float32)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    bad[1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="2 non-finite"):
        datasets.from_arrays(bad, np.zeros(6, int))
    with pytest.raises(ValueError, match=r"\[\.\.\., None\]"):
        datasets.from_arrays(x[..., 0], np.zeros(6, int))
    with pytest.raises(ValueError, match="6 images"):
        datasets.from_arrays(x, np.zeros(5, int))
    with pytest.raises(ValueError, match=">= 0"):
        datasets.from_arrays(x, -np.ones(6, int))
    with pytest.raises(ValueError, match="1-D"):
        datasets.from_arrays(x, np.zeros((6, 1), int))
    with pytest.raises(ValueError, match="batch_size"):
        datasets.from_arrays(x, batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        datasets.check_images(np.zeros((2, 3, 3, 1), dtype=object))


def test_check_images_casts_to_float32():
    x = datasets.check_images(np.ones((2, 3, 3, 3), dtype=np.uint8))
    assert x.dtype == np.float32 and x.shape == (2, 3, 3, 3)
    f = np.zeros((2, 3, 3, 1), dtype=np.float32)
    assert datasets.check_images(f) is f


def test_dataset_builders():
    ds, latents = datasets.hierarchical_dataset(HierarchicalModel(), 100, batch_size=32)
    x, y = next(iter(ds))
    assert tuple(x.shape) == (32, 9, 9, 1) and tuple(y.shape) == (32,)
    assert [z.shape for z in latents] == [(100, 3, 3), (100, 1, 1)]
    ds, latents = datasets.hierarchical_digits_dataset(50, batch_size=25, shuffle=False, noise=0.0)
    x, y = next(iter(ds))
    assert tuple(x.shape) == (25, 27, 27, 1)
    np.testing.assert_array_equal(y.numpy(), latents[2][:25, 0, 0])


def test_sample_grid():
    images, labels, _ = hierarchical_digits(200, seed=0)
    grid = datasets.sample_grid(images, labels, per_label=4, pad=1)
    assert grid.dtype == np.uint8 and grid.shape == (10 * 28 + 1, 4 * 28 + 1, 1)
    assert grid.min() == 0 and grid.max() == 255
    # Row r holds the first images of label r.
    first_two = images[labels == 2][0, ..., 0]
    cell = grid[1 + 2 * 28 : 1 + 2 * 28 + 27, 1 : 1 + 27, 0].astype(float)
    assert np.corrcoef(cell.ravel(), first_two.ravel())[0, 1] > 0.99


def test_save_sample_grid_png(tmp_path):
    images, labels, _ = hierarchical_digits(120, seed=0)
    keep = labels < 3
    path = tmp_path / "sub" / "dir" / "grid.png"
    out = datasets.save_sample_grid(images[keep], labels[keep], path, per_label=5, scale=2)
    assert out == path and path.exists()
    png = tf.io.decode_png(tf.io.read_file(str(path))).numpy()
    assert png.shape == ((3 * 28 + 1) * 2, (5 * 28 + 1) * 2, 1)  # one row per label
    expected = datasets.sample_grid(images[keep], labels[keep], per_label=5)
    np.testing.assert_array_equal(png[::2, ::2], expected)
    # An existing file is never replaced unless asked.
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        datasets.save_sample_grid(images, labels, path, per_label=2)
    assert path.read_bytes() == before
    datasets.save_sample_grid(images, labels, path, per_label=2, overwrite=True)
    assert path.read_bytes() != before


def test_augment_batch_is_a_padded_crop_and_flip():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 8, 8, 2)).astype(np.float32)
    out = datasets.augment_batch(images, np.random.default_rng(1), pad=2)
    assert out.shape == images.shape and out.dtype == np.float32
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    flips = 0
    for i in range(len(images)):  # every output is some window of the padded image, maybe mirrored
        windows = [padded[i, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        plain = any(np.array_equal(out[i], w) for w in windows)
        mirrored = any(np.array_equal(out[i], w[:, ::-1]) for w in windows)
        assert plain or mirrored
        flips += mirrored and not plain
    assert 10 < flips < 54  # about half flipped
    again = datasets.augment_batch(images, np.random.default_rng(1), pad=2)
    np.testing.assert_array_equal(out, again)  # seeded


def test_array_batches_cover_every_example_each_epoch():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((1, 2, 2, 1), np.float32)
    y = np.arange(10)
    data = datasets.ArrayBatches(x, y, batch_size=4, shuffle=True, seed=0)
    assert len(data) == 3
    orders = []
    for _ in range(2):
        seen = np.concatenate([data[i][1] for i in range(len(data))])
        assert sorted(seen.tolist()) == list(range(10))
        for i in range(len(data)):  # images stay paired with their labels
            xb, yb = data[i]
            np.testing.assert_array_equal(xb[:, 0, 0, 0], yb)
        orders.append(seen)
        data.on_epoch_end()
    assert not np.array_equal(orders[0], orders[1])  # reshuffled
    fixed = datasets.ArrayBatches(x, y, batch_size=4, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([fixed[i][1] for i in range(3)]), y)


def test_array_batches_reject_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        datasets.ArrayBatches(np.full((4, 2, 2, 1), np.nan), np.zeros(4, int))
    with pytest.raises(ValueError, match="must match"):
        datasets.ArrayBatches(np.zeros((4, 2, 2, 1)), np.zeros(3, int))
    with pytest.raises(ValueError, match="batch_size"):
        datasets.ArrayBatches(np.zeros((4, 2, 2, 1)), np.zeros(4, int), batch_size=0)


def test_array_batches_are_a_function_of_seed_and_epoch():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 6, 6, 1)).astype(np.float32), np.arange(20)
    run = datasets.ArrayBatches(x, y, batch_size=8, augment=True, seed=3)
    run.on_epoch_end()
    run.on_epoch_end()
    resumed = datasets.ArrayBatches(x, y, batch_size=8, augment=True, seed=3, epoch=2)
    for i in (2, 0, 1):  # any order of access
        np.testing.assert_array_equal(run[i][0], resumed[i][0])
        np.testing.assert_array_equal(run[i][1], resumed[i][1])
    with pytest.raises(ValueError, match="epoch"):
        datasets.ArrayBatches(x, y, epoch=-1)
