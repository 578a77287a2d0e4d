"""The speckle measure (scratchnst/transfer/speckle.py) on images whose answer is known without it."""

import numpy as np
import pytest

from scratchnst.transfer.speckle import speckle, top_octave_share


def test_white_noise_puts_three_quarters_of_its_power_in_the_top_octave():
    rng = np.random.default_rng(0)
    share = top_octave_share(rng.uniform(0, 255, (256, 320, 3)))
    assert share == pytest.approx(0.75, abs=0.02), share


def test_a_smooth_image_has_none_and_a_checkerboard_all():
    y, x = np.mgrid[0:128, 0:128]
    smooth = np.sin(2 * np.pi * x / 64) + np.cos(2 * np.pi * y / 40)  # 1/64 and 1/40 cycle per pixel
    assert top_octave_share(smooth) < 1e-3
    checker = ((x + y) % 2).astype(float)  # the Nyquist frequency on both axes
    assert top_octave_share(checker) > 0.99
    assert top_octave_share(np.full((32, 32, 3), 7.0)) == 0.0


def test_blurring_noise_lowers_the_share():
    """Noise upsampled 4x (each value a 4x4 block): power moves below the top octave."""
    rng = np.random.default_rng(1)
    coarse = np.kron(rng.standard_normal((64, 64)), np.ones((4, 4)))
    assert top_octave_share(coarse) < 0.3 < top_octave_share(rng.standard_normal((256, 256)))


def test_colour_and_grey_agree_on_a_grey_picture():
    rng = np.random.default_rng(2)
    grey = rng.uniform(0, 1, (40, 50))
    assert top_octave_share(np.stack([grey] * 3, axis=-1)) == pytest.approx(top_octave_share(grey), rel=1e-12)


def test_colour_speckle_shows_in_the_colour_channels_not_the_luminance():
    """Pink-green dots of equal luminance: Y stays smooth, Cb and Cr carry the noise; worst is their max."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:128, 0:128]
    grey = 128 + 40 * np.sin(2 * np.pi * x / 64)[..., None] * np.ones(3)  # smooth luminance
    dots = rng.choice([-1.0, 1.0], size=(128, 128))[..., None] * np.array([20.0, -20 * 0.299 / 0.587, 0.0])
    sp = speckle(grey + dots)  # the red-green swap keeps 0.299 R + 0.587 G constant
    assert sp["Y"] < 0.01 and sp["Cr"] > 0.5 and sp["worst"] == max(sp["Y"], sp["Cb"], sp["Cr"]), sp
