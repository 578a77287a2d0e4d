"""Tests for scratchnst.color, on NumPy and (when a GPU is there) CuPy.

References are independent of the code under test: published YIQ coefficients,
statistics computed with ``np.mean`` / ``np.cov``, and transfer matrices built
with SciPy's ``cholesky`` and ``sqrtm``.
"""

import numpy as np
import pytest
import scipy.linalg

from scratchnst.backend import to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.method.color import (
    MATCH_MODES,
    luminance,
    luminance_only_inputs,
    luminance_only_output,
    luminance_to_rgb,
    match_color_histogram,
    match_luminance,
    rgb_to_yiq,
    yiq_to_rgb,
)

# The xp fixture (numpy, and cupy where a GPU is present) is in conftest.py.


def colour_image(shape, seed, mean=(120.0, 90.0, 60.0), mix=None):
    """Random RGB pixels with correlated channels (a non-diagonal covariance)."""
    rng = np.random.default_rng(seed)
    mix = np.array([[30.0, 10.0, 5.0], [8.0, 25.0, -6.0], [2.0, 12.0, 20.0]]) if mix is None else mix
    z = rng.standard_normal((*shape, 3))
    return z @ mix.T + np.asarray(mean)


def pixel_cov(img):
    """Population colour covariance of an (..., 3) image, by NumPy."""
    return np.cov(np.asarray(img).reshape(-1, 3), rowvar=False, bias=True)


# --- YIQ ----------------------------------------------------------------------


def test_yiq_of_primaries_matches_published_coefficients(xp):
    # Columns of the NTSC/FCC matrix: Y = .299 R + .587 G + .114 B,
    # I = .596 R - .274 G - .322 B, Q = .211 R - .523 G + .312 B.
    published = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq = to_numpy(rgb_to_yiq(xp.asarray(np.eye(3))))  # rows: pure R, G, B
    np.testing.assert_allclose(yiq.T, published, atol=1.5e-3)


def test_grey_has_zero_chrominance(xp):
    grey = np.array([[0.0, 0.0, 0.0], [77.0, 77.0, 77.0], [255.0, 255.0, 255.0]])
    yiq = to_numpy(rgb_to_yiq(xp.asarray(grey)))
    np.testing.assert_allclose(yiq[:, 0], [0.0, 77.0, 255.0], atol=1e-9)
    np.testing.assert_allclose(yiq[:, 1:], 0.0, atol=1e-6)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_yiq_round_trip(xp, dtype, tol):
    rgb = np.random.default_rng(0).uniform(0, 255, (7, 11, 3)).astype(dtype)
    yiq = rgb_to_yiq(xp.asarray(rgb))
    back = yiq_to_rgb(yiq)
    assert yiq.dtype == dtype and back.dtype == dtype
    assert back.shape == rgb.shape
    np.testing.assert_allclose(to_numpy(back), rgb, rtol=0, atol=tol * 255)
    # and the other way round
    np.testing.assert_allclose(to_numpy(rgb_to_yiq(yiq_to_rgb(xp.asarray(rgb)))), rgb, rtol=0, atol=tol * 255)


def test_uint8_input_becomes_float64(xp):
    img = xp.asarray(np.full((2, 2, 3), 200, np.uint8))
    out = rgb_to_yiq(img)
    assert out.dtype == np.float64
    np.testing.assert_allclose(to_numpy(out)[..., 0], 200.0)  # no uint8 overflow


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 4), (3, 4, 4)])
def test_rgb_must_be_last_axis(xp, shape):
    with pytest.raises(ScratchNSTError):
        rgb_to_yiq(xp.zeros(shape))


def test_luminance_and_back(xp):
    rgb = np.random.default_rng(1).uniform(0, 255, (5, 6, 3))
    y = to_numpy(luminance(xp.asarray(rgb)))
    np.testing.assert_allclose(y, 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])
    grey = to_numpy(luminance_to_rgb(xp.asarray(y)))
    assert grey.shape == (5, 6, 3)
    np.testing.assert_array_equal(grey[..., 0], y)
    np.testing.assert_array_equal(grey[..., 2], y)
    np.testing.assert_allclose(to_numpy(luminance(xp.asarray(grey))), y, rtol=1e-12)


# --- luminance matching -------------------------------------------------------


def test_match_luminance_hits_content_mean_and_std(xp):
    rng = np.random.default_rng(2)
    style = rng.gamma(2.0, 30.0, (20, 30))  # skewed, unlike the content
    content = rng.uniform(40, 200, (25, 17))  # a different size
    out = to_numpy(match_luminance(xp.asarray(style), xp.asarray(content)))
    assert out.shape == style.shape
    assert abs(out.mean() - content.mean()) < 1e-10 * content.mean()
    assert abs(out.std() - content.std()) < 1e-10 * content.std()
    # An increasing affine map: the brightness order of the style pixels is kept.
    np.testing.assert_array_equal(np.argsort(out, axis=None), np.argsort(style, axis=None))


def test_match_luminance_float32_stays_float32(xp):
    rng = np.random.default_rng(3)
    style = rng.uniform(0, 255, (10, 10)).astype(np.float32)
    out = match_luminance(xp.asarray(style), xp.asarray(rng.uniform(0, 50, (8, 8))))
    assert out.dtype == np.float32


def test_match_luminance_of_flat_style_is_content_mean(xp):
    content = np.random.default_rng(4).uniform(0, 255, (6, 6))
    out = to_numpy(match_luminance(xp.full((3, 4), 0.1), xp.asarray(content)))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, content.mean(), rtol=1e-12)


def test_luminance_only_inputs(xp):
    content = colour_image((12, 9), seed=5)
    style = colour_image((7, 13), seed=6, mean=(30.0, 200.0, 100.0))
    c_grey, s_grey = (to_numpy(a) for a in luminance_only_inputs(xp.asarray(content), xp.asarray(style)))
    assert c_grey.shape == content.shape and s_grey.shape == style.shape
    y_c = 0.299 * content[..., 0] + 0.587 * content[..., 1] + 0.114 * content[..., 2]
    np.testing.assert_allclose(c_grey[..., 1], y_c, rtol=1e-12)
    np.testing.assert_allclose(s_grey[..., 0].mean(), y_c.mean(), rtol=1e-10)
    np.testing.assert_allclose(s_grey[..., 0].std(), y_c.std(), rtol=1e-10)
    np.testing.assert_array_equal(s_grey[..., 0], s_grey[..., 1])


# --- luminance-only output ----------------------------------------------------


def test_luminance_only_output_of_grey_content_is_grey(xp):
    # Grey content has I = Q = 0, so the output is grey at the stylized image's Y.
    stylized = colour_image((6, 8), seed=7)
    content = np.repeat(np.random.default_rng(8).uniform(0, 255, (6, 8, 1)), 3, axis=2)
    out = to_numpy(luminance_only_output(xp.asarray(stylized), xp.asarray(content)))
    y = 0.299 * stylized[..., 0] + 0.587 * stylized[..., 1] + 0.114 * stylized[..., 2]
    for c in range(3):
        np.testing.assert_allclose(out[..., c], y, atol=1e-9)


def test_luminance_only_output_keeps_content_colour_and_stylized_luminance(xp):
    stylized = colour_image((6, 8), seed=9)
    content = colour_image((6, 8), seed=10, mean=(200.0, 40.0, 90.0))
    out = to_numpy(luminance_only_output(xp.asarray(stylized), xp.asarray(content)))
    # Y of the output is the stylized Y; the output minus the content is grey
    # (it differs only in Y, and a pure-Y difference is R = G = B).
    y = lambda a: 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]  # noqa: E731
    np.testing.assert_allclose(y(out), y(stylized), atol=1e-9)
    diff = out - content
    np.testing.assert_allclose(diff[..., 0], diff[..., 1], atol=1e-9)
    np.testing.assert_allclose(diff[..., 0], diff[..., 2], atol=1e-9)
    # The same image as both inputs comes back unchanged.
    same = to_numpy(luminance_only_output(xp.asarray(content), xp.asarray(content)))
    np.testing.assert_allclose(same, content, atol=1e-9)


def test_luminance_only_output_shape_mismatch(xp):
    with pytest.raises(ScratchNSTError):
        luminance_only_output(xp.zeros((4, 5, 3)), xp.zeros((5, 4, 3)))


# --- colour histogram matching ------------------------------------------------


def reference_A(cov_s, cov_c, mode):
    """Transfer matrices built with SciPy, following the paper's formulas."""
    if mode == "chol":
        L_s = scipy.linalg.cholesky(cov_s, lower=True)
        L_c = scipy.linalg.cholesky(cov_c, lower=True)
        return L_c @ np.linalg.inv(L_s)
    S_half = np.real(scipy.linalg.sqrtm(cov_s))
    C_half = np.real(scipy.linalg.sqrtm(cov_c))
    if mode == "pca":
        return C_half @ np.linalg.inv(S_half)
    S_neg_half = np.linalg.inv(S_half)
    return S_neg_half @ np.real(scipy.linalg.sqrtm(S_half @ cov_c @ S_half)) @ S_neg_half


@pytest.mark.parametrize("mode", MATCH_MODES)
@pytest.mark.parametrize("eps, rtol", [(0.0, 1e-9), (1e-5, 1e-6)])
def test_histogram_matching_gives_content_mean_and_covariance(xp, mode, eps, rtol):
    style = colour_image((30, 40), seed=11, mean=(40.0, 80.0, 200.0))
    content = colour_image((25, 19), seed=12, mix=np.array([[50.0, -5.0, 0.0], [20.0, 15.0, 3.0], [0.0, 30.0, 9.0]]))
    out = to_numpy(match_color_histogram(xp.asarray(style), xp.asarray(content), mode, eps=eps))
    assert out.shape == style.shape and out.dtype == np.float64
    np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), content.reshape(-1, 3).mean(axis=0), rtol=rtol)
    cov_c = pixel_cov(content)
    assert np.abs(pixel_cov(out) - cov_c).max() < rtol * np.abs(cov_c).max()


@pytest.mark.parametrize("mode", MATCH_MODES)
def test_histogram_matching_uses_the_papers_matrix(xp, mode):
    style = colour_image((20, 20), seed=13)
    content = colour_image((15, 21), seed=14, mean=(10.0, 250.0, 30.0))
    out = to_numpy(match_color_histogram(xp.asarray(style), xp.asarray(content), mode, eps=0.0))
    x_s = style.reshape(-1, 3)
    A = reference_A(pixel_cov(style), pixel_cov(content), mode)
    expected = (x_s - x_s.mean(axis=0)) @ A.T + content.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(out.reshape(-1, 3), expected, rtol=0, atol=1e-8 * np.abs(expected).max())


def test_modes_really_differ(xp):
    style = colour_image((20, 20), seed=15)
    content = colour_image((20, 20), seed=16, mix=np.diag([40.0, 5.0, 20.0]))
    outs = {m: to_numpy(match_color_histogram(xp.asarray(style), xp.asarray(content), m)) for m in MATCH_MODES}
    assert np.abs(outs["chol"] - outs["pca"]).max() > 1
    assert np.abs(outs["pca"] - outs["sym"]).max() > 1
    # The symmetric (optimal transport) map moves colours least on average.
    moved = {m: np.mean(np.sum((outs[m] - style) ** 2, axis=-1)) for m in MATCH_MODES}
    assert moved["sym"] <= min(moved["chol"], moved["pca"]) + 1e-9


@pytest.mark.parametrize("mode", MATCH_MODES)
def test_matching_an_image_to_itself_changes_nothing(xp, mode):
    img = colour_image((10, 12), seed=17)
    out = to_numpy(match_color_histogram(xp.asarray(img), xp.asarray(img), mode, eps=0.0))
    np.testing.assert_allclose(out, img, atol=1e-9)


@pytest.mark.parametrize("mode", MATCH_MODES)
def test_grey_style_needs_eps_and_survives_with_it(xp, mode):
    grey = np.repeat(np.random.default_rng(18).uniform(0, 255, (9, 9, 1)), 3, axis=2)
    content = colour_image((8, 8), seed=19)
    out = to_numpy(match_color_histogram(xp.asarray(grey), xp.asarray(content), mode))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), content.reshape(-1, 3).mean(axis=0), rtol=1e-9)
    # The grey image varies along one colour direction only, so only that
    # direction's spread can be matched; the other two stay (nearly) flat.
    eig = np.linalg.eigvalsh(pixel_cov(out))
    assert eig[-1] > 1 and eig[0] < 1e-3


def test_grey_style_without_eps_is_a_clear_error():
    grey = np.repeat(np.random.default_rng(20).uniform(0, 255, (9, 9, 1)), 3, axis=2)
    with pytest.raises(ScratchNSTError):
        match_color_histogram(grey, colour_image((8, 8), seed=21), "chol", eps=0.0)


def test_histogram_matching_float32_and_uint8(xp):
    style = colour_image((10, 10), seed=22).astype(np.float32)
    content = np.clip(colour_image((10, 10), seed=23), 0, 255).astype(np.uint8)
    out = match_color_histogram(xp.asarray(style), xp.asarray(content))
    assert out.dtype == np.float32 and out.shape == style.shape
    out = match_color_histogram(xp.asarray(content), xp.asarray(style))
    assert out.dtype == np.float64


def test_histogram_matching_bad_arguments(xp):
    img = xp.asarray(colour_image((4, 4), seed=24))
    with pytest.raises(ScratchNSTError):
        match_color_histogram(img, img, mode="lab")
    with pytest.raises(ScratchNSTError):
        match_color_histogram(img, img, eps=-1.0)
    with pytest.raises(ScratchNSTError):
        match_color_histogram(img, xp.zeros((4, 4)))
