"""Hierarchical generative models of images (pure NumPy, no TensorFlow).

These are the data models that Malach & Shalev-Shwartz (arXiv 1803.09522,
section 1 of `docs/paper.md`) assume: an image is generated top-down, level by
level; every cell of a level holds a *semantic class*, and going one level
down every cell is replaced, independently, by an s x s patch of cells of the
level below drawn from a distribution that depends only on that cell's class.
At the bottom, classes become s x s pixel patches, plus noise.

Two models are provided:

- `HierarchicalModel`: a random instance of the model with any number of
  levels, classes and variants (drawn from a seed).
- `hierarchical_digits`: the paper's Figure 1 instance, seven-segment digits
  0-9 on 27 x 27 grey-scale images (3 levels, s = 3).

Everything here is deterministic: the same arguments give bit-identical
arrays (only `np.random.default_rng`, integer-exact structure, and
element-wise float arithmetic are used).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "HierarchicalModel",
    "hierarchical_digits",
    "to_blocks",
    "from_blocks",
    "DIGITS_LEVEL_NAMES",
    "DIGITS_GLYPHS",
    "DIGITS_BLOCKS",
    "DIGITS_PATCHES",
    "DIGITS_DISTRACTOR",
    "DIGITS_SEGMENTS",
]


# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------


def _check_int(value, name, minimum=None, owner="HierarchicalModel"):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner}: `{name}` must be an integer, got {value!r}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: `{name}` must be >= {minimum}, got {value}.")
    return value


def _check_float(value, name, minimum=0.0, maximum=None, owner="HierarchicalModel"):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: `{name}` must be a real number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: `{name}` must be finite, got {value}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: `{name}` must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{owner}: `{name}` must be <= {maximum}, got {value}.")
    return value


def to_blocks(grid, s):
    """Splits a grid into its non-overlapping s x s blocks.

    Args:
        grid: array of shape `[n, H, W, ...]` with `H` and `W` divisible by `s`.
        s: int, the block size.

    Returns:
        An array of shape `[n, H // s, W // s, s, s, ...]`; element
        `[b, i, j]` is the block `grid[b, i*s:(i+1)*s, j*s:(j+1)*s]`.

    Example:

    >>> g = np.arange(16).reshape(1, 4, 4)
    >>> to_blocks(g, 2)[0, 0, 1]
    array([[2, 3],
           [6, 7]])
    """
    grid = np.asarray(grid)
    s = int(s)
    if grid.ndim < 3 or grid.shape[1] % s or grid.shape[2] % s:
        raise ValueError(f"to_blocks: expected [n, H, W, ...] with H, W divisible by {s}, got {grid.shape}.")
    n, h, w = grid.shape[:3]
    rest = grid.shape[3:]
    x = grid.reshape((n, h // s, s, w // s, s) + rest)
    perm = (0, 1, 3, 2, 4) + tuple(range(5, x.ndim))
    return x.transpose(perm)


def from_blocks(blocks):
    """Inverse of `to_blocks`: assembles `[n, h, w, s, s, ...]` blocks into a grid.

    Args:
        blocks: array of shape `[n, h, w, s, s, ...]`.

    Returns:
        An array of shape `[n, h*s, w*s, ...]`.

    Example:

    >>> g = np.arange(16).reshape(1, 4, 4)
    >>> bool((from_blocks(to_blocks(g, 2)) == g).all())
    True
    """
    blocks = np.asarray(blocks)
    if blocks.ndim < 5 or blocks.shape[3] != blocks.shape[4]:
        raise ValueError(f"from_blocks: expected [n, h, w, s, s, ...], got {blocks.shape}.")
    n, h, w, s = blocks.shape[:4]
    rest = blocks.shape[5:]
    perm = (0, 1, 3, 2, 4) + tuple(range(5, blocks.ndim))
    return blocks.transpose(perm).reshape((n, h * s, w * s) + rest)


def _draw_pixel_patches(rng, num_classes, num_variants, s, channels):
    """Draws binary patches: distinct within a class, L1 >= 2 across classes."""
    d = s * s * channels
    total = num_classes * num_variants
    if d < 62 and total > 2**d:
        raise ValueError(
            f"HierarchicalModel: level 0 needs classes_per_level[0] * variants_per_class = {total} "
            f"distinct binary {s}x{s}x{channels} patches, but only 2**{d} = {2**d} exist; "
            "lower classes_per_level[0] or variants_per_class, or raise patch_size or channels."
        )
    for _ in range(20):
        if d <= 16:
            codes = rng.permutation(2**d)
            bits = ((codes[:, None] >> np.arange(d)) & 1).astype(np.int8)
        else:
            bits = rng.integers(0, 2, size=(65536, d), dtype=np.int8)
            bits = np.unique(bits, axis=0)
            bits = bits[rng.permutation(len(bits))]
        used = np.zeros(len(bits), dtype=bool)
        # -1: close (L1 <= 1) to no chosen patch; c >= 0: close only to class c; -2: close to several.
        close_to = np.full(len(bits), -1, dtype=np.int64)
        chosen = np.zeros((num_classes, num_variants, d), dtype=np.uint8)
        ok_all = True
        for c in range(num_classes):
            for v in range(num_variants):
                ok = ~used & ((close_to == -1) | (close_to == c))
                idx = int(np.argmax(ok))
                if not ok[idx]:
                    ok_all = False
                    break
                p = bits[idx]
                chosen[c, v] = p
                dist = np.abs(bits - p).sum(axis=1)
                used |= dist == 0
                near = dist <= 1
                close_to = np.where(near & (close_to == -1), c, np.where(near & (close_to != c), -2, close_to))
            if not ok_all:
                break
        if ok_all:
            return chosen.reshape(num_classes, num_variants, s, s, channels)
    raise ValueError(
        f"HierarchicalModel: could not draw {num_variants} binary {s}x{s}x{channels} patches for each of "
        f"{num_classes} level-0 classes with every two classes at L1 distance >= 2; lower "
        "classes_per_level[0] or variants_per_class, or raise patch_size or channels."
    )


def _draw_child_grids(rng, level, num_parents, num_variants, num_children, s):
    """Draws distinct s x s grids of child classes, covering every child class."""
    k = num_parents * num_variants
    cells = s * s
    space = num_children**cells
    if k > space:
        raise ValueError(
            f"HierarchicalModel: level {level} needs classes_per_level[{level}] * variants_per_class = {k} "
            f"distinct {s}x{s} grids of level-{level - 1} classes, but only "
            f"classes_per_level[{level - 1}]**{cells} = {space} exist."
        )
    if k * cells < num_children:
        raise ValueError(
            f"HierarchicalModel: the {k} variants of level {level} have only {k * cells} cells, fewer than the "
            f"{num_children} level-{level - 1} classes, so some level-{level - 1} class could never occur; "
            f"lower classes_per_level[{level - 1}] or raise classes_per_level[{level}] or variants_per_class."
        )
    for _ in range(1000):
        if space <= 2**20:
            codes = rng.choice(space, size=k, replace=False)
            digits = (codes[:, None] // (num_children ** np.arange(cells))) % num_children
        else:
            digits = rng.integers(0, num_children, size=(k, cells))
            if num_children > 1:
                pos = rng.choice(k * cells, size=num_children, replace=False)
                flat = digits.reshape(-1)
                flat[pos] = rng.permutation(num_children)
            if len(np.unique(digits, axis=0)) < k:
                continue
        if np.unique(digits).size < num_children:
            continue
        return digits.reshape(num_parents, num_variants, s, s).astype(np.int64)
    raise ValueError(
        f"HierarchicalModel: could not draw distinct level-{level} variants that use every level-{level - 1} "
        "class; change classes_per_level or variants_per_class."
    )


def _draw_prototype_variants(rng, num_classes, num_variants, alphabet, size, changes, min_gap, what):
    """Draws class prototypes and variants that differ from them in `changes` positions.

    Prototypes are random words of `size` symbols from `range(alphabet)` at
    pairwise Hamming distance >= 2 * changes + min_gap, so that variants of
    different classes stay at distance >= min_gap. Variant 0 is the prototype;
    the others each replace `changes` symbols of it (distinct within a class).
    """
    need = 2 * changes + min_gap
    for _ in range(200):
        protos = []
        for _ in range(100 * num_classes):
            cand = rng.integers(0, alphabet, size=size)
            if all(int((cand != p).sum()) >= need for p in protos):
                protos.append(cand)
                if len(protos) == num_classes:
                    break
        if len(protos) < num_classes:
            continue
        out = np.empty((num_classes, num_variants, size), dtype=np.int64)
        ok = True
        for c, proto in enumerate(protos):
            seen = {proto.tobytes()}
            out[c, 0] = proto
            for v in range(1, num_variants):
                for _ in range(200):
                    var = proto.copy()
                    pos = rng.choice(size, size=changes, replace=False)
                    var[pos] = (var[pos] + rng.integers(1, alphabet, size=changes)) % alphabet
                    if var.tobytes() not in seen:
                        break
                else:
                    ok = False
                    break
                seen.add(var.tobytes())
                out[c, v] = var
            if not ok:
                break
        if ok:
            return out
    raise ValueError(
        f"HierarchicalModel: could not draw {num_classes} {what} prototypes at distance >= {need} "
        f"with {num_variants} variants of {changes} change(s) each; lower classes_per_level, "
        "variants_per_class or variant_changes, or raise patch_size or channels."
    )


# ----------------------------------------------------------------------------
# Generic random hierarchical model
# ----------------------------------------------------------------------------


class HierarchicalModel:
    """A random instance of the paper's hierarchical generative model.

    Images are generated top-down through `levels` = L levels with patch size
    `patch_size` = s. Level i (0 <= i < L) is a grid of s**(L-1-i) x
    s**(L-1-i) cells, each holding a semantic class from
    `range(classes_per_level[i])`; level L-1 is a single top cell, level 0 the
    cells whose classes are drawn as s x s pixel patches, so images are
    s**L x s**L x `channels`.

    Sampling one image:

    1. The label y is uniform in `range(num_labels)`. Top class k belongs to
       label `k % num_labels`; the top class is uniform among the top classes
       of label y (so the label is a function of the top class).
    2. Going down from level i >= 1 to level i-1, every cell of class c is
       replaced, independently, by one of the `variants_per_class` s x s grids
       of level-(i-1) classes owned by c, chosen uniformly.
    3. At level 0, every cell of class c becomes one of the `variants_per_class`
       binary s x s x channels pixel patches owned by c, chosen uniformly.
    4. Pixels = patch values (0 or 1) + `noise` * N(0, 1), float32, no clipping.

    The variants are drawn once, at construction, from
    `np.random.default_rng(seed)`, so that every class is identifiable: at each
    level i >= 1 all variants of all classes are distinct s x s grids (a block
    of level-(i-1) classes determines the level-i class) and every
    level-(i-1) class occurs in some variant; at level 0 the pixel patches of a
    class are distinct, and any two patches of different classes differ in at
    least 2 pixels (L1 distance >= 2).

    Args:
        levels: int >= 1, the number of levels L.
        patch_size: int >= 2, the patch size s.
        classes_per_level: sequence of L ints >= 1; `classes_per_level[i]` is
            the number of classes |C_i| at level i (index 0 = bottom, L-1 =
            top). The top count must be >= `num_labels`.
        variants_per_class: int >= 1, how many patches each class owns.
        noise: float >= 0, standard deviation of the Gaussian pixel noise.
        num_labels: int >= 1, the number of labels.
        channels: int >= 1, image channels.
        seed: int >= 0, seeds the construction of the variants.
        variant_changes: `None` (the default) draws every variant at random,
            so the variants of a class share nothing but their class. An
            int c draws, for each class, a random prototype and variants
            that differ from it in exactly c pixels (level 0) or c cells
            (levels >= 1): "slightly kinked" versions of one stroke, as in
            the paper's Figure 1. Prototypes are then kept far enough apart
            that variants of different classes never coincide.

    Attributes:
        image_shape: `(s**L, s**L, channels)`.
        latent_shapes: list of L tuples, `(s**(L-1-i), s**(L-1-i))`.
        variants: list of L read-only arrays. `variants[0]` has shape
            `[C_0, V, s, s, channels]` (uint8 pixel patches);
            `variants[i]` for i >= 1 has shape `[C_i, V, s, s]` (int64
            level-(i-1) classes).
        label_of_class: int64 array `[C_{L-1}]`, the label of each top class.

    Example:

    >>> model = HierarchicalModel(levels=2, patch_size=3, classes_per_level=(8, 4))
    >>> images, labels, latents = model.sample(100, seed=1)
    >>> images.shape, labels.shape, [z.shape for z in latents]
    ((100, 9, 9, 1), (100,), [(100, 3, 3), (100, 1, 1)])
    """

    def __init__(
        self,
        levels=2,
        patch_size=3,
        classes_per_level=(8, 4),
        variants_per_class=3,
        noise=0.1,
        num_labels=2,
        channels=1,
        seed=0,
        variant_changes=None,
    ):
        self.levels = _check_int(levels, "levels", 1)
        self.patch_size = _check_int(patch_size, "patch_size", 2)
        self.variants_per_class = _check_int(variants_per_class, "variants_per_class", 1)
        self.noise = _check_float(noise, "noise", 0.0)
        self.num_labels = _check_int(num_labels, "num_labels", 1)
        self.channels = _check_int(channels, "channels", 1)
        self.seed = _check_int(seed, "seed", 0)
        self.variant_changes = (
            None if variant_changes is None else _check_int(variant_changes, "variant_changes", 1)
        )
        if isinstance(classes_per_level, (str, bytes)) or not hasattr(classes_per_level, "__len__"):
            raise ValueError(
                f"HierarchicalModel: `classes_per_level` must be a sequence of {self.levels} ints, "
                f"got {classes_per_level!r}."
            )
        if len(classes_per_level) != self.levels:
            raise ValueError(
                f"HierarchicalModel: `classes_per_level` must have one entry per level (levels={self.levels}), "
                f"got {len(classes_per_level)} entries: {tuple(classes_per_level)!r}."
            )
        self.classes_per_level = tuple(
            _check_int(c, f"classes_per_level[{i}]", 1) for i, c in enumerate(classes_per_level)
        )
        if self.classes_per_level[-1] < self.num_labels:
            raise ValueError(
                f"HierarchicalModel: the top level needs at least one class per label: "
                f"classes_per_level[-1] = {self.classes_per_level[-1]} < num_labels = {self.num_labels}."
            )
        s, L, V = self.patch_size, self.levels, self.variants_per_class
        side = s**L
        if side > 2**15:
            raise ValueError(f"HierarchicalModel: images of side patch_size**levels = {side} are too large.")
        self.image_shape = (side, side, self.channels)
        self.latent_shapes = [(s ** (L - 1 - i), s ** (L - 1 - i)) for i in range(L)]

        rng = np.random.default_rng(self.seed)
        if self.variant_changes is None:
            variants = [_draw_pixel_patches(rng, self.classes_per_level[0], V, s, self.channels)]
            for i in range(1, L):
                variants.append(
                    _draw_child_grids(rng, i, self.classes_per_level[i], V, self.classes_per_level[i - 1], s)
                )
        else:
            variants = [
                _draw_prototype_variants(
                    rng, self.classes_per_level[0], V, 2, s * s * self.channels, self.variant_changes, 2,
                    "level-0 pixel-patch",
                ).reshape(self.classes_per_level[0], V, s, s, self.channels).astype(np.uint8)
            ]
            for i in range(1, L):
                children = self.classes_per_level[i - 1]
                for _ in range(100):
                    grids = _draw_prototype_variants(
                        rng, self.classes_per_level[i], V, children, s * s, self.variant_changes, 1,
                        f"level-{i} grid",
                    )
                    if np.unique(grids).size == children:
                        break
                else:
                    raise ValueError(
                        f"HierarchicalModel: the level-{i} variants never use all {children} level-{i - 1} "
                        f"classes; lower classes_per_level[{i - 1}] or raise classes_per_level[{i}]."
                    )
                variants.append(grids.reshape(self.classes_per_level[i], V, s, s))
        for v in variants:
            v.setflags(write=False)
        self.variants = variants
        top = self.classes_per_level[-1]
        self.label_of_class = np.arange(top, dtype=np.int64) % self.num_labels
        self.label_of_class.setflags(write=False)
        # Number of top classes owned by each label.
        self._top_per_label = np.bincount(self.label_of_class, minlength=self.num_labels)

    def get_config(self):
        """Returns the constructor arguments as a dict.

        Returns:
            A dict such that `HierarchicalModel(**config)` rebuilds this model.

        Example:

        >>> HierarchicalModel(**HierarchicalModel().get_config()).image_shape
        (9, 9, 1)
        """
        return {
            "levels": self.levels,
            "patch_size": self.patch_size,
            "classes_per_level": tuple(self.classes_per_level),
            "variants_per_class": self.variants_per_class,
            "noise": self.noise,
            "num_labels": self.num_labels,
            "channels": self.channels,
            "seed": self.seed,
            "variant_changes": self.variant_changes,
        }

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"HierarchicalModel({args})"

    def sample(self, n, seed=0):
        """Draws `n` labelled images with their latent class grids.

        Deterministic: the same (model seed, `seed`, `n`) give bit-identical
        arrays. The class structure is drawn before the noise, so models that
        differ only in `noise` give the same labels and latents.

        Args:
            n: int >= 1, the number of images.
            seed: int >= 0, the sampling seed.

        Returns:
            A tuple `(images, labels, latents)`: `images` float32
            `[n, s**L, s**L, channels]`; `labels` int64 `[n]`; `latents` a
            list of L int64 arrays, `latents[i]` of shape
            `[n, s**(L-1-i), s**(L-1-i)]` holding the class of every level-i
            cell (`latents[L-1]` is the top class, shape `[n, 1, 1]`).

        Example:

        >>> images, labels, latents = HierarchicalModel(noise=0.0).sample(4, seed=0)
        >>> sorted(np.unique(images).tolist())
        [0.0, 1.0]
        """
        n = _check_int(n, "n", 1, owner="HierarchicalModel.sample")
        seed = _check_int(seed, "seed", 0, owner="HierarchicalModel.sample")
        rng = np.random.default_rng([seed, self.seed])
        K = self.num_labels
        labels = rng.integers(0, K, size=n, dtype=np.int64)
        j = rng.integers(0, self._top_per_label[labels], dtype=np.int64)
        grid = (labels + j * K).reshape(n, 1, 1)
        latents = [grid]
        V = self.variants_per_class
        for i in range(self.levels - 1, 0, -1):
            v = rng.integers(0, V, size=grid.shape, dtype=np.int64)
            grid = from_blocks(self.variants[i][grid, v])
            latents.insert(0, grid)
        v = rng.integers(0, V, size=grid.shape, dtype=np.int64)
        images = from_blocks(self.variants[0][grid, v]).astype(np.float32)
        if self.noise > 0:
            images += np.float32(self.noise) * rng.standard_normal(images.shape, dtype=np.float32)
        return images, labels, latents


# ----------------------------------------------------------------------------
# Hierarchical digits (the paper's Figure 1 instance)
# ----------------------------------------------------------------------------

# Directions in which a lit segment leaves a node: bit flags.
_UP, _DOWN, _LEFT, _RIGHT = 1, 2, 4, 8
_DIR_LETTERS = ((_UP, "U"), (_DOWN, "D"), (_LEFT, "L"), (_RIGHT, "R"))

#: Seven-segment layout on the 3x3 node grid: segment -> the nodes it passes.
DIGITS_SEGMENTS = {
    "a": ((0, 0), (0, 1), (0, 2)),
    "b": ((0, 2), (1, 2)),
    "c": ((1, 2), (2, 2)),
    "d": ((2, 0), (2, 1), (2, 2)),
    "e": ((1, 0), (2, 0)),
    "f": ((0, 0), (1, 0)),
    "g": ((1, 0), (1, 1), (1, 2)),
}

# Each digit's glyphs; the first is the standard seven-segment encoding, the
# others are the common alternative forms (used when `variants=True`).
_DIGIT_GLYPH_SEGMENTS = (
    ("abcdef",),
    ("bc",),
    ("abdeg",),
    ("abcdg",),
    ("bcfg",),
    ("acdfg",),
    ("acdefg", "cdefg"),  # 6 with / without the top bar
    ("abc", "abcf"),  # 7 without / with the left hook
    ("abcdefg",),
    ("abcdfg", "abcfg"),  # 9 with / without the bottom bar
)

# Mid-level (level 0) classes.
_BLANK, _HORIZ, _VERT, _NODE, _JUNCTION = 0, 1, 2, 3, 4
_MID_NAMES = ("blank", "horizontal_piece", "vertical_piece", "node", "junction_mark")


def _p(rows):
    return np.array([[float(ch) for ch in r] for r in rows.split("/")], dtype=np.float32)


# Pixel patches of each mid-level class (values in {0, 1}); the first is the canonical one.
_MID_PATCHES = (
    (_p("000/000/000"),),  # blank (the "+" distractor is handled separately)
    (_p("000/111/000"), _p("010/101/000"), _p("000/101/010")),  # horizontal: straight, kinked up/down
    (_p("010/010/010"), _p("010/100/010"), _p("010/001/010")),  # vertical: straight, kinked left/right
    (_p("111/111/111"), _p("111/101/111")),  # node (end / corner): solid dot, ring
    (_p("101/010/101"), _p("111/010/111")),  # junction mark: x, hourglass
)

#: The "+" distractor mark, a rare pixel variant of the blank class.
DIGITS_DISTRACTOR = _p("010/111/010")


def _glyph_masks(segments):
    masks = np.zeros((3, 3), dtype=np.int64)
    for seg in segments:
        nodes = DIGITS_SEGMENTS[seg]
        for (r0, c0), (r1, c1) in zip(nodes[:-1], nodes[1:]):
            if r1 > r0:
                masks[r0, c0] |= _DOWN
                masks[r1, c1] |= _UP
            else:
                masks[r0, c0] |= _RIGHT
                masks[r1, c1] |= _LEFT
    return masks


def _mask_name(mask):
    arms = "".join(letter for bit, letter in _DIR_LETTERS if mask & bit)
    if mask == 0:
        return "blank"
    if mask == _LEFT | _RIGHT:
        return "horizontal"
    if mask == _UP | _DOWN:
        return "vertical"
    if len(arms) == 1:
        return f"end_{arms}"
    if len(arms) == 2:
        return f"corner_{arms}"
    if len(arms) == 3:
        return f"tee_{arms}"
    return "cross"


def _mask_blocks(mask):
    """The 3x3 mid-level arrangements of one top-level class (canonical first)."""
    arms = [bit for bit, _ in _DIR_LETTERS if mask & bit]
    base = np.full((3, 3), _BLANK, dtype=np.int64)
    if mask == 0:
        return [base]
    if mask & _UP:
        base[0, 1] = _VERT
    if mask & _DOWN:
        base[2, 1] = _VERT
    if mask & _LEFT:
        base[1, 0] = _HORIZ
    if mask & _RIGHT:
        base[1, 2] = _HORIZ
    if mask == _LEFT | _RIGHT:
        centres = [_HORIZ, _NODE]
    elif mask == _UP | _DOWN:
        centres = [_VERT, _NODE]
    elif len(arms) == 1:
        centres = [_NODE, _VERT if mask & (_UP | _DOWN) else _HORIZ]
    elif len(arms) == 2:
        centres = [_NODE, _HORIZ, _VERT]
    elif len(arms) == 3:
        through = _VERT if (mask & _UP and mask & _DOWN) else _HORIZ
        centres = [_JUNCTION, _NODE, through]
    else:
        centres = [_JUNCTION, _NODE]
    blocks = []
    for c in centres:
        b = base.copy()
        b[1, 1] = c
        blocks.append(b)
    return blocks


def _pad_variants(per_class, shape, dtype):
    counts = np.array([len(v) for v in per_class], dtype=np.int64)
    table = np.zeros((len(per_class), int(counts.max())) + shape, dtype=dtype)
    for c, vs in enumerate(per_class):
        for k, v in enumerate(vs):
            table[c, k] = v
    table.setflags(write=False)
    counts.setflags(write=False)
    return table, counts


def _assert_variants_identify_classes(variants_per_class, what, owners):
    """Asserts that no variant is shared by two classes or repeated."""
    seen = {}
    for c, variants in enumerate(variants_per_class):
        for v in variants:
            key = v.tobytes()
            assert seen.setdefault(key, c) == c, f"{what} shared by {owners} {seen[key]} and {c}"
    assert len(seen) == sum(len(v) for v in variants_per_class), f"duplicate {what}s"


def _build_digits():
    glyph_masks = [[_glyph_masks(g) for g in glyphs] for glyphs in _DIGIT_GLYPH_SEGMENTS]
    all_masks = sorted(
        {int(m) for glyphs in glyph_masks for g in glyphs for m in g.ravel()},
        key=lambda m: (bin(m).count("1"), m),
    )
    mask_id = {m: i for i, m in enumerate(all_masks)}
    to_ids = np.vectorize(lambda m: mask_id[int(m)], otypes=[np.int64])
    glyphs = [[to_ids(g) for g in gs] for gs in glyph_masks]
    blocks = [_mask_blocks(m) for m in all_masks]

    # Identifiability checks (run at import).
    _assert_variants_identify_classes(glyphs, "digit glyph", "digits")
    _assert_variants_identify_classes(blocks, "mid-level block", "top classes")
    used_mid = {int(x) for bs in blocks for b in bs for x in b.ravel()}
    assert used_mid == set(range(len(_MID_NAMES))), used_mid
    pats = [(c, p) for c, ps in enumerate(_MID_PATCHES) for p in ps] + [(_BLANK, DIGITS_DISTRACTOR)]
    for i, (ci, pi) in enumerate(pats):
        for cj, pj in pats[i + 1 :]:
            dist = np.abs(pi - pj).sum()
            assert dist >= (1 if ci == cj else 2), f"pixel patches of classes {ci}, {cj} too close ({dist})"

    glyph_table, glyph_counts = _pad_variants(glyphs, (3, 3), np.int64)
    block_table, block_counts = _pad_variants(blocks, (3, 3), np.int64)
    patch_table, patch_counts = _pad_variants(
        [list(ps) + ([DIGITS_DISTRACTOR] if c == _BLANK else []) for c, ps in enumerate(_MID_PATCHES)],
        (3, 3),
        np.float32,
    )
    # The blank class's second slot is the distractor; it is not a uniform variant.
    patch_counts = patch_counts.copy()
    patch_counts[_BLANK] = 1
    patch_counts.setflags(write=False)
    names = (
        _MID_NAMES,
        tuple(_mask_name(m) for m in all_masks),
        tuple(str(d) for d in range(10)),
    )
    return names, glyph_table, glyph_counts, block_table, block_counts, patch_table, patch_counts, tuple(all_masks)


(
    DIGITS_LEVEL_NAMES,
    _GLYPH_TABLE,
    _GLYPH_COUNTS,
    _BLOCK_TABLE,
    _BLOCK_COUNTS,
    _PATCH_TABLE,
    _PATCH_COUNTS,
    _TOP_MASKS,
) = _build_digits()

#: Per digit (level 2 class), the 3x3 grids of level-1 classes it can expand to.
DIGITS_GLYPHS = tuple(_GLYPH_TABLE[d, : _GLYPH_COUNTS[d]] for d in range(10))
#: Per level-1 class (stroke primitive), the 3x3 grids of level-0 classes it can expand to.
DIGITS_BLOCKS = tuple(_BLOCK_TABLE[c, : _BLOCK_COUNTS[c]] for c in range(len(_BLOCK_COUNTS)))
#: Per level-0 class (mid-level stroke), its 3x3 pixel patches (blank: no distractor here).
DIGITS_PATCHES = tuple(_PATCH_TABLE[c, : _PATCH_COUNTS[c]] for c in range(len(_PATCH_COUNTS)))
DIGITS_DISTRACTOR.setflags(write=False)


def _smooth_texture(rng, n, side, knots=4):
    """A smooth float32 field in [-1, 1]: bilinear interpolation of a coarse random grid."""
    coarse = rng.uniform(-1.0, 1.0, size=(n, knots, knots)).astype(np.float32)
    pos = np.arange(side) * ((knots - 1) / (side - 1))
    i0 = np.minimum(np.floor(pos).astype(np.int64), knots - 2)
    f = (pos - i0).astype(np.float32)
    g = np.float32(1.0) - f
    rows = coarse[:, i0, :] * g[None, :, None] + coarse[:, i0 + 1, :] * f[None, :, None]  # [n, side, knots]
    out = rows[:, :, i0]
    out *= g
    right = rows[:, :, i0 + 1]
    right *= f
    out += right
    return out


def hierarchical_digits(n, seed=0, noise=0.15, distractor_rate=0.05, variants=True, texture=0.1):
    """Samples the paper's Figure 1 dataset: seven-segment digits on 27 x 27 images.

    Three levels with s = 3 (see `DIGITS_LEVEL_NAMES` for all class names):

    - level 2 (1 x 1): the digit 0-9 (10 classes; `latents[2][:, 0, 0] ==
      labels`). A digit expands to a 3 x 3 grid of stroke primitives: its
      seven-segment glyph on the 3 x 3 node grid (segment a = top row, f/b =
      upper left/right columns, g = middle row, e/c = lower columns, d =
      bottom row). With `variants=True`, 6, 7 and 9 also have their common
      alternative glyphs (6 without the top bar, 7 with the left hook, 9
      without the bottom bar).
    - level 1 (3 x 3): stroke primitives. Each node's class is the set of
      directions (up, down, left, right) in which a lit segment leaves it:
      `blank`, `end_*`, `horizontal`, `vertical`, `corner_*`, `tee_*`.
      A primitive expands to a 3 x 3 block of mid-level strokes: the arm cell
      towards each direction of the set is a horizontal/vertical piece, the
      corners are blank, and the centre is a piece that depends on the shape
      (straight piece, node, or junction mark); with `variants=True` the
      centre may also be drawn with an alternative piece. The arms fix the
      primitive, so a block determines its primitive.
    - level 0 (9 x 9): mid-level strokes `blank`, `horizontal_piece`,
      `vertical_piece`, `node`, `junction_mark`, each a 3 x 3 pixel patch
      (with `variants=True`: straight or kinked pieces, a solid or ring node,
      an x or hourglass junction). A blank cell is drawn, with probability
      `distractor_rate`, as a small "+" distractor mark (it is still class
      blank in `latents[0]`).

    Pixels = patch (strokes 1, background 0) + `noise` * N(0, 1) + `texture`
    * a smooth random field in [-1, 1] (bilinear interpolation of a random
    4 x 4 grid per image); float32, not clipped. Every random choice is
    uniform over the variants of a class and independent across cells.

    Args:
        n: int >= 1, the number of images.
        seed: int >= 0; the same (n, seed, options) give bit-identical output.
        noise: float >= 0, standard deviation of the Gaussian pixel noise.
        distractor_rate: float in [0, 1], probability that a blank mid-level
            cell carries a "+" distractor.
        variants: bool; False draws every class with its canonical variant
            only (distractors and noise still apply).
        texture: float >= 0, amplitude of the smooth background texture
            (0 disables it).

    Returns:
        A tuple `(images, labels, latents)`: `images` float32
        `[n, 27, 27, 1]`; `labels` int64 `[n]` (the digit); `latents` a list
        of 3 int64 arrays with shapes `[n, 9, 9]` (mid-level strokes),
        `[n, 3, 3]` (stroke primitives), `[n, 1, 1]` (the digit).

    Example:

    >>> images, labels, latents = hierarchical_digits(500, seed=0)
    >>> images.shape, [z.shape[1:] for z in latents]
    ((500, 27, 27, 1), [(9, 9), (3, 3), (1, 1)])
    """
    owner = "hierarchical_digits"
    n = _check_int(n, "n", 1, owner=owner)
    seed = _check_int(seed, "seed", 0, owner=owner)
    noise = _check_float(noise, "noise", 0.0, owner=owner)
    distractor_rate = _check_float(distractor_rate, "distractor_rate", 0.0, 1.0, owner=owner)
    texture = _check_float(texture, "texture", 0.0, owner=owner)
    if not isinstance(variants, (bool, np.bool_)):
        raise ValueError(f"{owner}: `variants` must be a bool, got {variants!r}.")

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n, dtype=np.int64)
    top = labels.reshape(n, 1, 1)
    # Structure first (independent of noise/texture), then texture, then noise.
    counts = _GLYPH_COUNTS if variants else np.ones_like(_GLYPH_COUNTS)
    v = rng.integers(0, counts[top], dtype=np.int64)
    primitives = from_blocks(_GLYPH_TABLE[top, v])
    counts = _BLOCK_COUNTS if variants else np.ones_like(_BLOCK_COUNTS)
    v = rng.integers(0, counts[primitives], dtype=np.int64)
    strokes = from_blocks(_BLOCK_TABLE[primitives, v])
    counts = _PATCH_COUNTS if variants else np.ones_like(_PATCH_COUNTS)
    v = rng.integers(0, counts[strokes], dtype=np.int64)
    plus = (strokes == _BLANK) & (rng.random(strokes.shape) < distractor_rate)
    v = np.where(plus, 1, v)
    images = from_blocks(_PATCH_TABLE[strokes, v])[..., None]
    field = _smooth_texture(rng, n, images.shape[1])
    if texture > 0:
        field *= np.float32(texture)
        images += field[..., None]
    del field
    if noise > 0:
        z = rng.standard_normal(images.shape, dtype=np.float32)
        z *= np.float32(noise)
        images += z
    return images, labels, [strokes, primitives, top.copy()]
