"""The paper's Figure 1 dataset: seven-segment digits 0-9 on 27 x 27 images.

An instance of the hierarchical generative model of `generative` (3 levels,
s = 3) with hand-made classes instead of random ones: digits expand to
seven-segment glyphs of stroke primitives, primitives to blocks of mid-level
strokes, strokes to 3 x 3 pixel patches, plus "+" distractors, noise and a
smooth background texture.

Owns `hierarchical_digits` (the sampler) and the instance's tables:
`DIGITS_LEVEL_NAMES` (every class name per level), `DIGITS_SEGMENTS`,
`DIGITS_GLYPHS`, `DIGITS_BLOCKS`, `DIGITS_PATCHES` and `DIGITS_DISTRACTOR`.
The tables are built, and checked to identify their classes, at import.

Deterministic like `generative`: the same arguments give bit-identical
arrays. Pure NumPy, no TensorFlow.
"""

import numpy as np

from layerwise_keras.datasets.blocks import from_blocks
from layerwise_keras.datasets.checks import check_float, check_int

__all__ = [
    "hierarchical_digits",
    "DIGITS_LEVEL_NAMES",
    "DIGITS_GLYPHS",
    "DIGITS_BLOCKS",
    "DIGITS_PATCHES",
    "DIGITS_DISTRACTOR",
    "DIGITS_SEGMENTS",
]


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
    n = check_int(n, "n", 1, owner=owner)
    seed = check_int(seed, "seed", 0, owner=owner)
    noise = check_float(noise, "noise", 0.0, owner=owner)
    distractor_rate = check_float(distractor_rate, "distractor_rate", 0.0, 1.0, owner=owner)
    texture = check_float(texture, "texture", 0.0, owner=owner)
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
