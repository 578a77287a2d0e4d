"""Plain helpers shared by several test modules (fixtures are in conftest.py)."""

# The layers style transfer reads by default: its content layer and the five style layers.
LAYERS_USED = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]

# Floor of every float64 finite-difference check (see scratchnst.network.gradcheck.rel_error).
GRAD_TOL = 1e-7


def report(name, err, tol=GRAD_TOL):
    """Print a gradient check's relative error (pytest -s shows it) and fail above ``tol``."""
    print(f"\n  {name}: relative error {err:.2e}")
    assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"


def conv_inputs(rng, xp, C, H, W, O, dtype, k=3):
    """A random input (C, H, W), kernel (O, C, k, k) and bias (O,) on ``xp`` in ``dtype``."""
    x = rng.standard_normal((C, H, W))
    w = rng.standard_normal((O, C, k, k))
    b = rng.standard_normal(O)
    return [xp.asarray(a, dtype=dtype) for a in (x, w, b)]


def write_small_weights(path):
    """A weights file in scratchnst's layout that loads, without normalisation factors: VGG19's shapes,
    quantized, every code 0. Returns its path."""
    import numpy as np

    from scratchnst.files.convert import write_h5
    from scratchnst.network.architecture import CONV_CHANNELS

    params = {layer: {"kernel_codes": np.zeros((o, c, 3, 3), np.uint8),
                      "kernel_codebook": np.linspace(-0.01, 0.01, 256, dtype=np.float32),
                      "bias": np.zeros(o, np.float32)} for layer, (o, c) in CONV_CHANNELS.items()}
    attrs = dict(source="test", source_sha256="0" * 64, channel_order="BGR", scale=255.0,
                 mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
    return write_h5(path, params, attrs)
