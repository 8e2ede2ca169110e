"""The paper's hierarchical generative model of images (pure NumPy, no TensorFlow).

These are the data models that Malach & Shalev-Shwartz (arXiv 1803.09522,
section 1 of `docs/paper.md`) assume: an image is generated top-down, level by
level; every cell of a level holds a *semantic class*, and going one level
down every cell is replaced, independently, by an s x s patch of cells of the
level below drawn from a distribution that depends only on that cell's class.
At the bottom, classes become s x s pixel patches, plus noise.

Owns `HierarchicalModel`, a random instance of the model with any number of
levels, classes and variants (drawn from a seed), and the machinery that draws
its identifiable variants. The paper's Figure 1 instance, seven-segment
digits, is `digits.hierarchical_digits`; the block geometry both use is
`blocks`. For existing imports this module also re-exports `to_blocks`,
`from_blocks`, `hierarchical_digits` and the `DIGITS_*` tables.

Everything here is deterministic: the same arguments give bit-identical
arrays (only `np.random.default_rng`, integer-exact structure, and
element-wise float arithmetic are used).
"""

from __future__ import annotations

import numpy as np

from layerwise_keras.datasets.blocks import from_blocks, to_blocks
from layerwise_keras.datasets.checks import check_float, check_int

# Re-exported so that `from layerwise_keras.datasets.generative import ...` keeps working.
from layerwise_keras.datasets import digits
from layerwise_keras.datasets.digits import (
    DIGITS_BLOCKS,
    DIGITS_DISTRACTOR,
    DIGITS_GLYPHS,
    DIGITS_LEVEL_NAMES,
    DIGITS_PATCHES,
    DIGITS_SEGMENTS,
    hierarchical_digits,
)

__all__ = ["HierarchicalModel", "to_blocks", "from_blocks", *digits.__all__]

_OWNER = "HierarchicalModel"


# ----------------------------------------------------------------------------
# Drawing identifiable variants
# ----------------------------------------------------------------------------


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
        self.levels = check_int(levels, "levels", 1, owner=_OWNER)
        self.patch_size = check_int(patch_size, "patch_size", 2, owner=_OWNER)
        self.variants_per_class = check_int(variants_per_class, "variants_per_class", 1, owner=_OWNER)
        self.noise = check_float(noise, "noise", 0.0, owner=_OWNER)
        self.num_labels = check_int(num_labels, "num_labels", 1, owner=_OWNER)
        self.channels = check_int(channels, "channels", 1, owner=_OWNER)
        self.seed = check_int(seed, "seed", 0, owner=_OWNER)
        self.variant_changes = (
            None if variant_changes is None else check_int(variant_changes, "variant_changes", 1, owner=_OWNER)
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
            check_int(c, f"classes_per_level[{i}]", 1, owner=_OWNER) for i, c in enumerate(classes_per_level)
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
        n = check_int(n, "n", 1, owner="HierarchicalModel.sample")
        seed = check_int(seed, "seed", 0, owner="HierarchicalModel.sample")
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
