"""Tiled evaluation (scratchnst/method/tiled.py): the plan, and the same loss and gradient as untiled.

The images are small but cut so that crops stop inside the image (the halo is
really used) and tiles do not divide it (83 x 117 in tiles of 48 or 20).
"""

import numpy as np
import pytest
from helpers import report  # tests/ is on sys.path (pytest rootdir conftest)

import scratchnst
from scratchnst.backend import to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.inside.receptive_fields import receptive_fields
from scratchnst.method import tiled
from scratchnst.method.objective import STYLE_LAYERS, Objective
from scratchnst.network.architecture import LAYERS, activation_shapes, depth
from scratchnst.transfer import estimate
from scratchnst.transfer.settings import Settings

SHAPE = (83, 117)
DEEP = dict(content_layers=("relu2_1", "relu4_2"), style_layers=STYLE_LAYERS)  # to relu5_1: S = 16
SHALLOW = dict(content_layers=("relu3_1",), style_layers=("relu1_1", "relu2_1", "relu3_1"))  # S = 4
MIDDLE = dict(content_layers=("relu2_2", "relu4_1"), style_layers=("relu1_1", "relu3_1", "relu4_1"))  # S = 8


@pytest.fixture(scope="module")
def net64():
    return scratchnst.load_vgg19(dtype="float64")


def inputs(seed=0, shape=SHAPE, dtype="float64"):
    """Content, two styles of other sizes, and a generated image near the content: no flat areas."""
    rng = np.random.default_rng(seed)
    content = rng.uniform(-100, 100, (3, *shape))
    styles = [rng.uniform(-100, 100, (3, 56, 70)), rng.uniform(-100, 100, (3, 90, 48))]
    x = content + 30 * rng.standard_normal(content.shape)
    return [a.astype(dtype) for a in (content, *styles, x)]


def both(net, tile, layers, seed=0, dtype="float64", value=False):
    """(loss, grad, value or None, terms) of the untiled and the tiled objective, and the tiled one's plan."""
    content, s0, s1, x = inputs(seed, dtype=dtype)
    out = []
    for t in (None, tile):
        obj = Objective(net, content, [s0, s1], style_blend=[2, 1], tv_weight=0.1, tile=t, **layers)
        loss, g = obj.value_and_grad(x)
        terms = obj.terms
        out.append((loss, g, obj.value(x) if value else None, terms))
    return out, obj.plan


def rel(a, b):
    return float(np.linalg.norm(np.ravel(a - b)) / np.linalg.norm(np.ravel(b)))


def check_same(untiled, tiled_, tol, name):
    (L0, g0, v0, t0), (L1, g1, v1, t1) = untiled, tiled_
    report(f"{name}: loss", abs(L1 - L0) / abs(L0), tol)
    if v0 is not None:
        report(f"{name}: value", abs(v1 - v0) / abs(v0), tol)
    report(f"{name}: gradient (relative norm)", rel(g1, g0), tol)
    for kind in ("content", "style"):
        assert t1["layers"][kind].keys() == t0["layers"][kind].keys()
        for n, J in t0["layers"][kind].items():
            assert t1["layers"][kind][n] == pytest.approx(J, rel=tol), (kind, n)
    assert t1["tv"] == t0["tv"]  # on the whole image in both
    assert g1.dtype == g0.dtype and g1.shape == g0.shape


def halo_is_used(plan):
    """Some crop stops inside the image on each axis, so a wrong halo would show."""
    H, W = plan.shape
    rows = any(0 < t.crop[0] or t.crop[1] < H for t in plan.tiles)
    cols = any(0 < t.crop[2] or t.crop[3] < W for t in plan.tiles)
    return rows and cols


# ------------------------------------------------------------------ the plan


def test_reach_and_stride_are_the_receptive_field():
    for name, rf in receptive_fields().items():
        assert tiled.stride(name) == rf.jump
        assert 2 * tiled.reach(name) + rf.jump == rf.size and -rf.offset == tiled.reach(name), name


@pytest.mark.parametrize("shape", [SHAPE, (16, 16), (100, 33), (97, 250)])
@pytest.mark.parametrize("layers, tile", [(DEEP, 48), (DEEP, 20), (SHALLOW, 21), (MIDDLE, 1), (DEEP, 10_000)])
def test_the_plan_owns_every_position_of_every_layer_once(shape, layers, tile):
    used = layers["content_layers"] + layers["style_layers"]
    plan = tiled.make_plan(shape, used, tile)
    S = plan.stride
    assert S == max(tiled.stride(n) for n in used)
    assert all(q % S == 0 and q <= S * -(-tile // S) for q in plan.size)  # tile rounded up to S
    shapes = activation_shapes(*shape, "pool5")
    for n in LAYERS[: max(depth(n) for n in used) + 1]:  # every layer the passes compute
        _, h, w = shapes[n]
        count = np.zeros((h, w), int)
        for t in plan.tiles:
            a, b, c, d = t.crop
            assert a % S == 0 and c % S == 0  # pool windows line up with the image's
            rows, cols = tiled.owned(t, n)
            s = tiled.stride(n)
            assert rows.stop <= (b - a) // s and cols.stop <= (d - c) // s  # inside the crop's activation
            count[rows.start + a // s : rows.stop + a // s, cols.start + c // s : cols.stop + c // s] += 1
        assert (count == 1).all(), n
    for t in plan.tiles:  # each owned unit's receptive field lies in the crop, or the image's padding
        y0, y1, x0, x1 = t.own
        a, b, c, d = t.crop
        assert y0 % S == 0 and x0 % S == 0
        r = tiled.reach(max(used, key=depth))
        assert a == 0 or a <= y0 - r
        assert c == 0 or c <= x0 - r
        assert b == shape[0] or b >= y1 + r
        assert d == shape[1] or d >= x1 + r


def test_plan_of_a_big_image():
    plan = tiled.make_plan((4096, 4096), DEEP["content_layers"] + DEEP["style_layers"], 768)
    assert plan.size == (688, 688) and plan.halo == (80, 70) and len(plan.tiles) == 36
    assert tiled.largest_crop((4096, 4096), ["relu5_1"], 768) == (838, 838)


@pytest.mark.parametrize("tile", [0, -16, 2.5, "64", True, np.float64(32)])
def test_bad_tile_is_one_line(net64, tile):
    content, s0, _, _ = inputs(shape=(20, 20))
    with pytest.raises(ScratchNSTError, match="tile must be a positive whole number") as e:
        Objective(net64, content, s0, tile=tile)
    assert "\n" not in str(e.value)


def test_an_image_too_small_for_the_layers_is_one_line(net64):
    content, s0, _, _ = inputs(shape=(40, 40))
    for c, s in ((content[:, :8], s0), (content, s0[:, :, :8])):  # too small at relu5_1 (not at relu4_2)
        with pytest.raises(ScratchNSTError, match=r"too small to reach relu5_1") as e:
            Objective(net64, c, s, tile=16)
        assert "\n" not in str(e.value)


# ------------------------------------------------------------------ exact: the same loss and gradient


def test_tiled_equals_untiled_to_relu5_1(net64):
    """Two styles blended, two content layers, TV; 83 x 117 in tiles of 48 (6 tiles, S = 16, halo 80 / 70)."""
    (untiled, tiled_), plan = both(net64, 48, DEEP)
    assert len(plan.tiles) == 6 and plan.halo == (80, 70)
    assert any(t.crop[2] > 0 for t in plan.tiles)  # a crop starts inside the image (83 px is less than 48 + 2 * 70)
    check_same(untiled, tiled_, 1e-10, "tiled, relu5_1, max pooling")


@pytest.mark.parametrize("layers, tile, pooling", [(SHALLOW, 32, "avg"), (MIDDLE, 48, "max")],
                         ids=["to relu3_1, avg", "to relu4_1, max"])
def test_tiled_equals_untiled_on_shallower_layers(net64, monkeypatch, layers, tile, pooling):
    """A deepest layer of stride 4 or 8: a smaller halo, and crops cut on both axes; value() too."""
    monkeypatch.setattr(net64, "pooling", pooling)
    (untiled, tiled_), plan = both(net64, tile, layers, seed=1, value=True)
    assert halo_is_used(plan) and max(plan.size) <= tile
    check_same(untiled, tiled_, 1e-10, f"tiled, {len(plan.tiles)} tiles of {plan.size}, stride {plan.stride}, "
               f"{pooling} pooling")


def test_tiled_in_float32():
    net = scratchnst.load_vgg19(dtype="float32")
    (untiled, tiled_), plan = both(net, 48, MIDDLE, seed=2, dtype="float32")
    check_same(untiled, tiled_, 1e-4, "tiled, float32")


def test_a_halo_one_stride_too_small_is_caught(net64, monkeypatch):
    """The check above can fail: with the reach one stride short, owned units see the crop's padding."""
    exact = tiled.reach
    monkeypatch.setattr(tiled, "reach", lambda layer: exact(layer) - tiled.stride(layer))
    (untiled, tiled_), plan = both(net64, 48, MIDDLE, seed=1)
    assert plan.halo == (24, 22) and halo_is_used(plan)
    err, loss_err = rel(tiled_[1], untiled[1]), abs(tiled_[0] / untiled[0] - 1)
    print(f"\n  halo one stride too small: gradient relative error {err:.2e}, loss {loss_err:.2e}")
    assert err > 1e-4


def test_max_pool_ties_follow_the_convolutions_rounding(net64, monkeypatch):
    """A flat area makes max-pool ties: the loss still agrees, the gradient may route a tie elsewhere.

    The fast convolutions round differently in a crop than in the whole image (bands,
    Winograd tiles), so near-equal maxima may be chosen differently: both are valid
    subgradients. Average pooling has no ties and stays exact.
    """
    content, s0, _, x = inputs(seed=3)
    x[:, 10:75, 20:100] = 50.0
    for pooling in ("avg", "max"):
        monkeypatch.setattr(net64, "pooling", pooling)
        results = [Objective(net64, content, s0, tile=t, **SHALLOW).value_and_grad(x) for t in (None, 40)]
        (L0, g0), (L1, g1) = results
        assert abs(L1 / L0 - 1) < 1e-12
        print(f"\n  flat area, {pooling} pooling: gradient relative error {rel(g1, g0):.2e}")
        if pooling == "avg":
            assert rel(g1, g0) < 1e-10


# ------------------------------------------------------------------ on the device


def test_tiled_on_every_backend(xp, net64):
    """The same numbers through the CuPy code path (the strict stand-in, and a real GPU where there is one)."""
    content, s0, s1, x = inputs(seed=4, shape=(50, 70))
    ref = Objective(net64, content, [s0, s1], tile=None, **SHALLOW)
    loss, g = ref.value_and_grad(x)
    net = scratchnst.load_vgg19(dtype="float64", backend="cupy" if xp is not np else "numpy")
    obj = Objective(net, xp.asarray(content), [xp.asarray(s0), xp.asarray(s1)], tile=24, **SHALLOW)
    assert halo_is_used(obj.plan)
    loss_d, g_d = obj.value_and_grad(xp.asarray(x))
    assert isinstance(loss_d, float) and isinstance(g_d, type(xp.asarray(x)))
    assert loss_d == pytest.approx(loss, rel=1e-10)
    report("tiled on the device: gradient", rel(to_numpy(g_d), g), 1e-10)


def test_tiled_synchronises_once_per_evaluation(strict_xp):
    """Both passes stay on the device: one host transfer per evaluation, as untiled, and no upload."""
    net = scratchnst.load_vgg19(backend="cupy")
    content, s0, _, x = (strict_xp.asarray(a) for a in inputs(seed=5, shape=(40, 50), dtype="float32"))
    obj = Objective(net, content, s0, tile=24, tv_weight=1e-3, **SHALLOW)
    assert len(obj.plan.tiles) > 1
    obj.value_and_grad(x)  # warm-up: kernels transformed and cached
    strict_xp.reset_counters()
    loss, grad = obj.value_and_grad(x)
    assert strict_xp.SYNCS.count == 1, strict_xp.SYNCS
    assert strict_xp.UPLOADS.count == 0, strict_xp.UPLOADS
    strict_xp.reset_counters()
    assert obj.value(x) == pytest.approx(loss, rel=1e-6)
    assert strict_xp.SYNCS.count == 1, strict_xp.SYNCS


# ------------------------------------------------------------------ plumbing: settings, the run, the estimate


@pytest.mark.parametrize("tile", [0, -1, 2.5, "512", True, 10**6])
def test_settings_refuse_a_bad_tile(tile):
    with pytest.raises(ScratchNSTError, match="tile must be"):
        Settings(content="chelsea", styles=["starry_night"], tile=tile).validate()


def test_the_run_passes_the_tile_to_the_objective(net64):
    from scratchnst.transfer.loop import build_objective

    rng = np.random.default_rng(6)
    rgb = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    settings = Settings(content="chelsea", styles=["starry_night"], tile=32, content_layers=["relu3_1"],
                        style_layers=["relu1_1", "relu3_1"]).validate()
    obj = build_objective(settings, net64, rgb[0], rgb[1:])
    assert obj.plan.size == (20, 28) and len(obj.plan.tiles) == 4  # 40 x 56 in as few tiles of <= 32 as can be
    settings.tile = None
    assert build_objective(settings.validate(), net64, rgb[0], rgb[1:]).plan is None


def test_choose_tile_fits_the_budget():
    assert estimate.choose_tile(256, 256, 8 * 2**30) is None  # untiled fits
    tile = estimate.choose_tile(4096, 4096, 4 * 2**30)
    assert tile % 16 == 0 and estimate.tiled_memory_bytes(4096, 4096, tile) <= 4 * 2**30
    bigger = estimate.choose_tile(4096, 4096, 6 * 2**30)
    assert bigger > tile  # more memory, larger tiles (fewer halos)
    assert estimate.tiled_memory_bytes(4096, 4096, 2 * bigger) > 6 * 2**30
    assert estimate.tiled_memory_bytes(4096, 4096, 512) < estimate.memory_bytes(4096, 4096) / 10
    with pytest.raises(ScratchNSTError, match="does not fit"):
        estimate.choose_tile(4096, 4096, 2**29)

