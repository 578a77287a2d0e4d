"""What changes from one coarse-to-fine level to the next: sizes, starting image, colour.

    sizes = scale_sizes(1024, 0)                       # [256, 512, 1024], long sides
    content, styles = at_size(content, styles, 512, 1024)
    x = upsample(x, net, (3, H, W))                    # the coarser result, to start the next level

* **Sizes.** Large outputs are optimised coarse to fine (:func:`scale_sizes`): at half
  resolution first, then upsampled and refined, which is far cheaper than starting at
  full size and gives coherent large-scale structure. Every level sees the content and
  styles resized by the same factor (:func:`at_size`).
* **Starting image.** Level 0 starts from :func:`initial_image` (the content, noise, the
  course's blend of the two, or a file); every later level from the previous level's
  result, upsampled (:func:`upsample`).
* **Colour.** Colour preservation (Gatys et al., "Preserving Color in Neural Artistic
  Style Transfer", 2016) changes the inputs before the run
  (:func:`preserve_color_inputs`) and, for luminance-only transfer, the output after it
  (:func:`restore_color`, applied by :func:`finish_rgb`).
"""

import numpy as np

from scratchnst.backend import to_backend, to_numpy
from scratchnst.files import images

# ------------------------------------------------------------------ sizes


def scale_sizes(size, scales):
    """Long sides of the coarse-to-fine levels, smallest first.

    ``scales`` levels, each half the next (``0``: as many as keep the smallest at
    256 px or more, one level for sizes up to 512).
    """
    if scales == 0:
        scales = 1
        while size / 2**scales >= 256:
            scales += 1
    sizes = [max(16, round(size / 2**k)) for k in range(scales - 1, -1, -1)]
    return sizes


def at_size(content, styles, long_side, final_long_side):
    """Content and styles resized for a level whose long side is ``long_side``.

    The styles shrink by the same factor as the content, so a brush stroke covers the
    same fraction of the image at every level.
    """
    if long_side == final_long_side:
        return content, styles
    f = long_side / final_long_side
    content = images.resize_long_side(content, long_side)
    styles = [images.resize_long_side(s, max(16, round(max(s.shape[:2]) * f))) for s in styles]
    return content, styles


# ------------------------------------------------------------------ starting image


def initial_image(settings, content_x, net, rng):
    """The starting image in the network's input space, shaped like ``content_x``.

    ``settings.init``: ``content`` (a copy of ``content_x``), ``noise`` (uniform over the
    pixel range), ``blend`` (``noise_ratio * noise + (1 - noise_ratio) * content``, the
    course's start) or the path of an image, resized to ``content_x``'s (H, W).
    """
    xp = net.xp
    if settings.init == "content":
        return content_x.copy()
    # Noise: uniform over the pixel range, drawn on the host so CPU and GPU runs agree.
    lo, hi = net.prep.pixel_bounds()
    shape = content_x.shape
    noise = rng.uniform(lo[:, None, None], hi[:, None, None], size=shape)
    noise = to_backend(noise, net.backend, net.dtype)
    if settings.init == "noise":
        return noise
    if settings.init == "blend":
        r = settings.noise_ratio
        return xp.asarray(r * noise + (1 - r) * content_x, dtype=net.dtype)
    H, W = shape[1:]
    rgb = images.load_image(images.resolve_image_path(settings.init))
    return net.preprocess(images.resize_to(rgb, (H, W)))


def upsample(x, net, shape):
    """Resize an input-space image to (3, H, W) for the next, finer level (bicubic on the host)."""
    rgb_like = to_numpy(x).astype(np.float32).transpose(1, 2, 0)
    from PIL import Image

    channels = [
        np.asarray(Image.fromarray(rgb_like[..., c], mode="F").resize((shape[2], shape[1]), Image.BICUBIC))
        for c in range(3)
    ]
    return to_backend(np.stack(channels), net.backend, net.dtype)


# ------------------------------------------------------------------ colour


def preserve_color_inputs(content, styles, mode):
    """Colour preservation applied to the inputs (Gatys et al. 2016b).

    ``histogram``: each style image's colours are matched to the content's (mean
    and covariance) before transfer. ``luminance``: transfer runs on luminance
    only; the style luminance is matched to the content's mean and spread, and
    both are replicated to three channels (the output's colour is put back in
    :func:`restore_color`).
    """
    from scratchnst.method import color

    if mode == "none":
        return content, styles
    if mode == "histogram":
        matched = [color.match_color_histogram(s.astype(np.float64), content.astype(np.float64)) for s in styles]
        return content, [_to_uint8(m) for m in matched]
    grey = [color.luminance_only_inputs(content, s) for s in styles]  # [(content grey, style grey)]
    return _to_uint8(grey[0][0]), [_to_uint8(g[1]) for g in grey]


def restore_color(rgb, content_rgb, mode):
    """For ``luminance`` mode: the stylised luminance with the content's colour (YIQ)."""
    from scratchnst.method import color

    if mode != "luminance":
        return rgb
    out = color.luminance_only_output(rgb.astype(np.float64), content_rgb.astype(np.float64))
    return _to_uint8(out)


def _to_uint8(a):
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def finish_rgb(net, x, content_rgb, settings):
    """The optimised image as RGB uint8, colour restored for luminance-only transfer.

    ``content_rgb`` is the content as loaded (before colour preservation) at ``x``'s size.
    """
    rgb = net.deprocess(x)
    return restore_color(rgb, content_rgb, settings.preserve_color)
