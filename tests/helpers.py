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
