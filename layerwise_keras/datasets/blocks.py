"""Block grids: an image or class grid cut into its s x s blocks, and back.

The geometry both generative models share (`generative.HierarchicalModel`
and `digits.hierarchical_digits`): one level of the hierarchy replaces every
cell by an s x s block of the level below, so sampling assembles blocks with
`from_blocks` and tests read them back with `to_blocks`. Pure NumPy.
"""

import numpy as np

__all__ = ["to_blocks", "from_blocks"]


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
