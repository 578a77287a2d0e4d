"""Colour preservation for style transfer.

Gatys, Bethge, Hertzmann and Shechtman, "Preserving Color in Neural Artistic Style
Transfer" (2016, arXiv:1606.05897), give two ways to keep the content photo's
colours while copying a painting's brush strokes:

1. **Luminance-only transfer** (their section 3). Run the style transfer on
   luminance alone, then put the content image's colour back:

   * :func:`luminance` of content and style, :func:`match_luminance` of the style
     luminance to the content's mean and standard deviation (so the two images
     are in the same brightness range), and :func:`luminance_to_rgb` to make
     three-channel grey images the network can take.
     :func:`luminance_only_inputs` does those steps in one call.
   * After optimisation, :func:`luminance_only_output` combines the stylized
     image's luminance Y with the content's chrominance I, Q.

2. **Colour histogram matching** (their section 2). Recolour the style image so
   its colour mean and covariance equal the content's, then use it as the
   style target: :func:`match_color_histogram`.

All of these run once, on images, before or after the optimisation; none is
inside the loss, so none needs a backward pass. Images are float arrays shaped
``(..., 3)`` with RGB in the last axis (channels-last, like
:mod:`scratchnst.files.images`), in 0..255 or any other consistent scale. Every
function is written against ``xp = array_module(x)``, so it runs on CuPy arrays on
the GPU unchanged. Results are not clipped: clipping to 0..255 would change the
statistics just matched, so it is left to the final conversion to ``uint8``.
"""

import numpy as np

from scratchnst.backend import array_module, to_numpy
from scratchnst.errors import ScratchNSTError

# NTSC YIQ (FCC 1953), the colour space the paper uses. Y is luma; I and Q are
# chrominance. These four-decimal coefficients (as commonly tabulated for the FCC
# standard) are chosen over longer ones because their I and Q rows sum to exactly
# zero, so any grey (R = G = B) has I = Q = 0 and luminance_to_rgb is exact.
RGB_TO_YIQ = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.5959, -0.2746, -0.3213],
        [0.2115, -0.5227, 0.3112],
    ]
)
# The exact inverse rather than the rounded published one (1.0, 0.956, 0.621, ...),
# so that yiq_to_rgb(rgb_to_yiq(x)) == x to machine precision.
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)

MATCH_MODES = ("chol", "pca", "sym")


def _as_float_rgb(x, name="image"):
    """``x`` as a float array of the same backend with a last axis of 3.

    Float inputs keep their dtype (float32 on the stylization path); integer
    inputs such as ``uint8`` images become float64.
    """
    xp = array_module(x)
    x = xp.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(xp.float64)
    if x.ndim < 1 or x.shape[-1] != 3:
        raise ScratchNSTError(f"{name} must have RGB in its last axis, shape (..., 3); got {x.shape}")
    return x


def _same_backend(a, b, names):
    if array_module(a) is not array_module(b):
        raise ScratchNSTError(f"{names[0]} and {names[1]} must be on the same backend (numpy/cupy)")


def _apply_3x3(x, M):
    """``y[..., i] = sum_j M[i, j] x[..., j]``: a colour matrix on every pixel."""
    xp = array_module(x)
    return x @ xp.asarray(M.T, dtype=x.dtype)  # (..., 3) x (3, 3) -> (..., 3)


def rgb_to_yiq(rgb):
    """RGB -> YIQ, per pixel.

    Parameters
    ----------
    rgb : ndarray, shape (..., 3)
        Any scale (0..255 or 0..1); Y comes out in the same scale.

    Returns
    -------
    yiq : ndarray, shape (..., 3), float
        ``[Y, I, Q] = RGB_TO_YIQ @ [R, G, B]``.
    """
    return _apply_3x3(_as_float_rgb(rgb, "rgb"), RGB_TO_YIQ)


def yiq_to_rgb(yiq):
    """YIQ -> RGB, the exact inverse of :func:`rgb_to_yiq`.

    Parameters
    ----------
    yiq : ndarray, shape (..., 3)

    Returns
    -------
    rgb : ndarray, shape (..., 3), float, not clipped.
    """
    return _apply_3x3(_as_float_rgb(yiq, "yiq"), YIQ_TO_RGB)


def luminance(rgb):
    """The Y channel of YIQ, ``0.299 R + 0.587 G + 0.114 B``.

    Parameters
    ----------
    rgb : ndarray, shape (..., 3)

    Returns
    -------
    y : ndarray, shape (...), float
    """
    rgb = _as_float_rgb(rgb, "rgb")
    xp = array_module(rgb)
    return rgb @ xp.asarray(RGB_TO_YIQ[0], dtype=rgb.dtype)  # (..., 3) x (3,) -> (...)


def luminance_to_rgb(y):
    """A grey RGB image with luminance ``y``: ``R = G = B = Y``.

    Exact, because the Y row of the YIQ matrix sums to 1 and its I and Q rows
    sum to 0. This is how a luminance image is fed to VGG, which expects three
    channels.

    Parameters
    ----------
    y : ndarray, shape (...)

    Returns
    -------
    rgb : ndarray, shape (..., 3)
    """
    xp = array_module(y)
    return xp.repeat(xp.asarray(y)[..., None], 3, axis=-1)


def match_luminance(style_lum, content_lum):
    """Shift and scale the style luminance to the content's mean and deviation.

    Parameters
    ----------
    style_lum : ndarray, any shape
        Luminance of the style image, ``L_S``.
    content_lum : ndarray, any shape (need not match the style's)
        Luminance of the content image, ``L_C``.

    Returns
    -------
    matched : ndarray, shaped like ``style_lum``, float
        ``L_S' = (sigma_C / sigma_S) (L_S - mu_S) + mu_C``, which has exactly the
        content's mean ``mu_C`` and standard deviation ``sigma_C``.

    Notes
    -----
    Gatys et al. (2016), section 3. Means and (population, ``ddof=0``) standard
    deviations are over all pixels; they are computed in float64, since the
    result's statistics are the point. A flat style image (``sigma_S = 0``) has
    no contrast to scale and maps to the constant ``mu_C`` (as does one whose
    deviation is below ``1e-12`` of its largest value: rounding noise).
    """
    xp = array_module(style_lum)
    _same_backend(style_lum, content_lum, ("style_lum", "content_lum"))
    style_lum = xp.asarray(style_lum)
    dtype = style_lum.dtype if style_lum.dtype.kind == "f" else np.float64
    L_s = style_lum.astype(xp.float64)
    L_c = xp.asarray(content_lum, dtype=xp.float64)
    mu_s, sigma_s = L_s.mean(), L_s.std()
    mu_c, sigma_c = L_c.mean(), L_c.std()
    # A constant image's computed sigma_S is rounding noise (~1e-17 |L|), not 0;
    # dividing by it would blow that noise up to full contrast. Below 1e-12 of
    # the values' size the style counts as flat. where() avoids a GPU sync.
    flat = sigma_s <= 1e-12 * xp.abs(L_s).max()
    scale = xp.where(flat, 0.0, sigma_c / xp.maximum(sigma_s, np.finfo(np.float64).tiny))
    return (scale * (L_s - mu_s) + mu_c).astype(dtype)


def luminance_only_inputs(content_rgb, style_rgb):
    """Grey network inputs for luminance-only transfer.

    Parameters
    ----------
    content_rgb : ndarray, shape (H_c, W_c, 3)
    style_rgb : ndarray, shape (H_s, W_s, 3)

    Returns
    -------
    content_grey : ndarray, shape (H_c, W_c, 3)
        :func:`luminance_to_rgb` of the content luminance.
    style_grey : ndarray, shape (H_s, W_s, 3)
        The style luminance after :func:`match_luminance` to the content's,
        as a grey RGB image.

    Run the style transfer on these two, then call :func:`luminance_only_output`
    with the result and the original ``content_rgb``.
    """
    _same_backend(content_rgb, style_rgb, ("content_rgb", "style_rgb"))
    y_c = luminance(content_rgb)
    y_s = match_luminance(luminance(style_rgb), y_c)
    return luminance_to_rgb(y_c), luminance_to_rgb(y_s)


def luminance_only_output(stylized_rgb, content_rgb):
    """The stylized image's luminance with the content image's colours.

    Parameters
    ----------
    stylized_rgb : ndarray, shape (H, W, 3)
        Result of the style transfer (typically run on luminance images).
    content_rgb : ndarray, shape (H, W, 3)
        The original colour content image.

    Returns
    -------
    out : ndarray, shape (H, W, 3), float, not clipped
        ``yiq_to_rgb([Y_stylized, I_content, Q_content])``.
    """
    _same_backend(stylized_rgb, content_rgb, ("stylized_rgb", "content_rgb"))
    stylized = _as_float_rgb(stylized_rgb, "stylized_rgb")
    content = _as_float_rgb(content_rgb, "content_rgb").astype(stylized.dtype)
    if stylized.shape != content.shape:
        raise ScratchNSTError(
            f"stylized image {stylized.shape} and content image {content.shape} "
            "must have the same shape; resize one first"
        )
    xp = array_module(stylized)
    yiq = xp.concatenate(
        [rgb_to_yiq(stylized)[..., :1], rgb_to_yiq(content)[..., 1:]], axis=-1
    )  # (H, W, 1) + (H, W, 2) -> (H, W, 3)
    return yiq_to_rgb(yiq)


def _sym_power(S, p):
    """``S^p`` for a symmetric positive (semi)definite 3x3 ``S``, by eigendecomposition.

    ``S = U diag(lam) U^T`` gives ``S^p = U diag(lam^p) U^T``. Eigenvalues that
    rounding pushed slightly below zero are clamped, so ``p = 1/2`` never makes NaN.
    """
    xp = array_module(S)
    lam, U = xp.linalg.eigh(S)
    lam = xp.maximum(lam, np.finfo(np.float64).tiny)
    return (U * lam**p) @ U.T  # U diag(lam^p) U^T


def color_transfer_matrix(cov_s, cov_c, mode="chol"):
    """A 3x3 ``A`` with ``A cov_s A^T = cov_c``, in one of three forms.

    Parameters
    ----------
    cov_s, cov_c : ndarray, shape (3, 3)
        Symmetric positive definite colour covariances of the style and content.
    mode : {"chol", "pca", "sym"}
        * ``"chol"``: ``A = L_C L_S^{-1}`` with Cholesky factors ``cov = L L^T``.
        * ``"pca"``: ``A = cov_c^{1/2} cov_s^{-1/2}``, square roots from the
          eigendecomposition (principal axes); the 3-D colour matching of Image
          Analogies that Gatys et al. also use.
        * ``"sym"``: ``A = cov_s^{-1/2} (cov_s^{1/2} cov_c cov_s^{1/2})^{1/2}
          cov_s^{-1/2}``, the unique symmetric positive definite solution: the
          Monge-Kantorovich optimal transport map between the two Gaussians, the
          one that moves colours least on average.

    Returns
    -------
    A : ndarray, shape (3, 3)

    Notes
    -----
    Check of each form, writing ``S = cov_s``, ``C = cov_c``:
    chol, ``L_C L_S^{-1} L_S L_S^T L_S^{-T} L_C^T = L_C L_C^T = C``;
    pca, ``C^{1/2} S^{-1/2} S S^{-1/2} C^{1/2} = C``;
    sym, with ``M = S^{1/2} C S^{1/2}``,
    ``S^{-1/2} M^{1/2} S^{-1/2} S S^{-1/2} M^{1/2} S^{-1/2} = S^{-1/2} M S^{-1/2} = C``.
    """
    xp = array_module(cov_s)
    if mode == "chol":
        L_s = xp.linalg.cholesky(cov_s)
        L_c = xp.linalg.cholesky(cov_c)
        return L_c @ xp.linalg.inv(L_s)
    if mode == "pca":
        return _sym_power(cov_c, 0.5) @ _sym_power(cov_s, -0.5)
    if mode == "sym":
        S_half, S_neg_half = _sym_power(cov_s, 0.5), _sym_power(cov_s, -0.5)
        M = S_half @ cov_c @ S_half
        M = (M + M.T) / 2  # re-symmetrise what rounding broke, for eigh
        return S_neg_half @ _sym_power(M, 0.5) @ S_neg_half
    raise ScratchNSTError(f"unknown colour matching mode {mode!r}; choose one of {', '.join(MATCH_MODES)}")


def _color_statistics(rgb, eps):
    """Per-pixel deviations (N, 3), mean (3,) and covariance + ``eps I`` (3, 3) of an image's colours, in float64."""
    xp = array_module(rgb)
    x = rgb.reshape(-1, 3).astype(xp.float64)  # (N, 3)
    mu = x.mean(axis=0)  # (3,)
    d = x - mu
    cov = d.T @ d / d.shape[0] + eps * xp.eye(3)  # (3, N) x (N, 3) -> (3, 3)
    return d, mu, cov


def match_color_histogram(style, content, mode="chol", eps=1e-5):
    """Recolour ``style`` so its colour mean and covariance are the content's.

    Parameters
    ----------
    style : ndarray, shape (H_s, W_s, 3) (any ``(..., 3)``)
        The style image, ``x_S`` per pixel.
    content : ndarray, shape (H_c, W_c, 3) (any ``(..., 3)``; size may differ)
        The content image whose colours to adopt.
    mode : {"chol", "pca", "sym"}
        Form of ``A``; see :func:`color_transfer_matrix`. All three reach the same
        mean and covariance but differ in how colours are rotated on the way.
    eps : float
        Ridge ``eps * I`` added to both covariances, in squared data units.

    Returns
    -------
    matched : ndarray, shaped like ``style``, float (``style``'s float dtype, or
        float64 for integer input), not clipped.
        ``x_S' = A (x_S - mu_S) + mu_C`` for every pixel.

    Notes
    -----
    Gatys et al. (2016), section 2: a linear map ``x' = A x + b`` with
    ``b = mu_C - A mu_S`` and ``A Sigma_S A^T = Sigma_C`` gives the recoloured style
    pixels the content's mean and covariance (population covariances, over all
    pixels).

    Why ``eps``: ``A`` inverts the style covariance (``L_S^{-1}`` or
    ``Sigma_S^{-1/2}``). A greyish or flat style image (a pencil sketch, a
    monochrome print) has a singular or nearly singular covariance, on which
    Cholesky fails and the inverse amplifies noise without bound; the ridge keeps
    every eigenvalue at least ``eps``. It goes on the content covariance too, so
    a grey content photo also factors. For 0..255 images colour variances are
    about 1e2..1e4, so ``1e-5`` moves the result's covariance by about
    ``eps |I - A A^T|``, far below anything visible. ``eps=0`` gives the exact
    algebra for well-conditioned inputs.

    The statistics are computed in float64 whatever the input dtype: a float32
    covariance of a near-grey image can lose positive definiteness to rounding.
    """
    _same_backend(style, content, ("style", "content"))
    style = _as_float_rgb(style, "style")
    content = _as_float_rgb(content, "content")
    if mode not in MATCH_MODES:
        raise ScratchNSTError(f"unknown colour matching mode {mode!r}; choose one of {', '.join(MATCH_MODES)}")
    if not eps >= 0:
        raise ScratchNSTError(f"eps must be >= 0, got {eps!r}")
    d_s, mu_s, cov_s = _color_statistics(style, eps)
    _, mu_c, cov_c = _color_statistics(content, eps)
    # Checked explicitly, on the host (3x3: cheap): cupy.linalg does not raise
    # LinAlgError on a singular matrix, it returns garbage.
    if not all(np.linalg.eigvalsh(to_numpy(cov)).min() > 0 for cov in (cov_s, cov_c)):
        raise ScratchNSTError("colour covariance is not positive definite (a grey or flat image?); use eps > 0")
    try:
        A = color_transfer_matrix(cov_s, cov_c, mode)
    except np.linalg.LinAlgError:
        raise ScratchNSTError(
            "colour covariance is not positive definite (a grey or flat image?); use eps > 0"
        ) from None
    matched = d_s @ A.T + mu_c  # row vectors: (A d)^T = d^T A^T
    return matched.reshape(style.shape).astype(style.dtype)
