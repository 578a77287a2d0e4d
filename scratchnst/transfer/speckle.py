"""How speckled an image is: the share of its spectral power in the top octave.

VGG19 barely sees pixel-level noise (its first layers average 3x3 windows and its
pools drop three quarters of the positions), so a generated image can reach a low
loss and still be covered in speckle: the loss does not show it, this measure does.

    share = sum of |FFT(l)|^2 over frequencies with max(|f_y|, |f_x|) > 1/4 cycle per pixel
            / sum of |FFT(l)|^2 over all frequencies but 0

with l the image's luminance (ITU-R BT.601 weights) minus its mean, under a Hann
window (so that the jump between opposite edges, which the FFT sees as a
periodic image's seam, adds no power). The top octave is the frequencies between
half the Nyquist rate and the Nyquist rate, on either axis: three quarters of the
frequency plane. White noise puts three quarters of its power there (share 0.75);
photos and paintings, whose spectra fall off as 1/f^2, a few per cent. A stylised
image should sit near its style image: ``benchmarks/gallery.py`` and the noise-start
measurements in ``benchmarks/README.md`` report the ratio of the two. :func:`speckle`
takes the share of each of Y, Cb and Cr, since colour speckle barely moves the
luminance.
"""

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601
# Rows: Y, Cb, Cr of ITU-R BT.601 (as JPEG uses them, offsets dropped: a constant adds no power).
YCBCR = np.array([LUMA, [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def top_octave_share(rgb):
    """Share of the spectral power of ``rgb`` (H, W, 3) in the top octave; see the module docstring.

    Parameters
    ----------
    rgb : array (H, W, 3), uint8 or float, any range; or (H, W) grey

    Returns
    -------
    float in [0, 1]; 0 for a constant image.
    """
    img = np.asarray(rgb, dtype=np.float64)
    luma = img @ LUMA if img.ndim == 3 else img  # (H, W)
    H, W = luma.shape
    window = np.outer(np.hanning(H), np.hanning(W))
    power = np.abs(np.fft.fft2((luma - luma.mean()) * window)) ** 2  # (H, W)
    power[0, 0] = 0.0
    fy = np.abs(np.fft.fftfreq(H))[:, None]  # cycles per pixel, 0 .. 0.5
    fx = np.abs(np.fft.fftfreq(W))[None, :]
    top = np.maximum(fy, fx) > 0.25  # (H, W) the top octave on either axis
    total = power.sum()
    return float(power[top].sum() / total) if total > 0 else 0.0


def speckle(rgb):
    """``{"Y": ..., "Cb": ..., "Cr": ..., "worst": ...}``: the top-octave share of the luminance and of each
    colour-difference channel, and the largest of the three.

    Luminance speckle is grain; colour speckle (pink and green dots, what a run from noise
    leaves) hardly changes the luminance, so it shows only in Cb and Cr.
    """
    img = np.asarray(rgb, dtype=np.float64)
    shares = {name: top_octave_share(img @ row) for name, row in zip(("Y", "Cb", "Cr"), YCBCR)}
    shares["worst"] = max(shares.values())
    return shares


if __name__ == "__main__":  # python -m scratchnst.transfer.speckle IMAGE ... [--size N]: one share per image
    import argparse

    from scratchnst.files.images import load_image, resolve_image_path

    p = argparse.ArgumentParser(description="share of spectral power in the top octave, per image")
    p.add_argument("images", nargs="+", help="files or bundled image names")
    p.add_argument("--size", type=int, help="resize to this long side first (compare at the output's size)")
    args = p.parse_args()
    print("     Y     Cb     Cr  worst  image")
    for name in args.images:
        sp = speckle(load_image(resolve_image_path(name), args.size))
        print(" ".join(f"{sp[k]:.4f}" for k in ("Y", "Cb", "Cr", "worst")), "", name)
