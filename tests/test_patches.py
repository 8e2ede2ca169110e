"""Tests of `layerwise_keras.monitoring.patches`: receptive fields checked against the convolutions themselves."""

import keras
import numpy as np
import pytest

from layerwise_keras.monitoring.patches import ReceptiveField, receptive_field, stage_patches, tile_patches


def _conv_stack(image, layers):
    """A Sequential of all-ones, bias-free, linear convs named stage{n}_conv."""
    model = keras.Sequential([keras.Input((image, image, 1))])
    for n, (k, s, padding) in enumerate(layers, start=1):
        model.add(keras.layers.Conv2D(1, k, strides=s, padding=padding, use_bias=False,
                                      kernel_initializer="ones", name=f"stage{n}_conv"))
    return model


@pytest.mark.parametrize(
    "image, layers",
    [
        (27, [(3, 3, "valid"), (3, 3, "valid")]),              # the paper: non-overlapping 3x3 patches
        (13, [(3, 2, "same"), (2, 1, "valid"), (3, 2, "same")]),  # overlapping, padded
        (10, [(4, 3, "same"), (3, 2, "same")]),
    ],
)
def test_receptive_field_matches_the_pixels_each_position_sees(image, layers):
    model = _conv_stack(image, layers)
    # One image per pixel, holding only that pixel: output (r, c) of stage n is > 0 exactly
    # when the pixel lies in the receptive field of (r, c).
    deltas = np.eye(image * image, dtype="float32").reshape(-1, image, image, 1)
    for n in range(1, len(layers) + 1):
        prefix = keras.Sequential([keras.Input((image, image, 1))] + model.layers[:n])
        seen = keras.ops.convert_to_numpy(prefix(deltas))[..., 0] > 0  # [pixels, gh, gw]
        field = receptive_field(model, n)
        assert field.grid == seen.shape[1:]
        for r in range(field.grid[0]):
            for c in range(field.grid[1]):
                expected = np.zeros((image, image), bool)
                y0, x0 = field.start[0] + r * field.jump[0], field.start[1] + c * field.jump[1]
                expected[max(y0, 0) : max(y0 + field.size[0], 0), max(x0, 0) : max(x0 + field.size[1], 0)] = True
                np.testing.assert_array_equal(seen[:, r, c].reshape(image, image), expected, err_msg=f"{n} {r} {c}")


def test_stage_patches_cut_the_fields_out_with_zero_padding():
    images = np.arange(2 * 5 * 5 * 2, dtype="float32").reshape(2, 5, 5, 2) + 1
    field = ReceptiveField(size=(3, 3), jump=(2, 2), start=(-1, -1), grid=(3, 3), image=(5, 5))
    every = stage_patches(images, field)
    assert every.shape == (2, 3, 3, 3, 3, 2)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    np.testing.assert_array_equal(every[1, 2, 1], padded[1, 4:7, 2:5])
    np.testing.assert_array_equal(every[0, 0, 0, 0], 0)  # the top row of (0, 0) is padding
    picked = stage_patches(images, field, [(1, 2, 1), (0, 0, 0)])
    np.testing.assert_array_equal(picked, every[[1, 0], [2, 0], [1, 0]])


def test_tile_patches_geometry_and_scaling():
    patches = np.stack([np.full((3, 2, 1), v, "float32") for v in (0.0, 1.0, 0.5, 1.0, 0.0)])
    grid = tile_patches(patches, scale=2, pad=1, columns=3)
    assert grid.shape == (2 * (6 + 1) + 1, 3 * (4 + 1) + 1, 1) and grid.dtype == np.uint8
    assert grid[1, 1, 0] == 0 and grid[1, 6, 0] == 255 and grid[1, 11, 0] == 128  # value 0.5 -> 128
    assert grid[0, 0, 0] == 128  # padding
