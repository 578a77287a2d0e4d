"""Before a long run: how much memory and time one iteration will take.

Both figures come from counting, not from running the network:

* FLOPs. A 3x3 convolution from C_in to C_out channels on an h x w map costs
  ``2 * 9 * C_in * C_out * h * w`` FLOPs forward (a multiply and an add per
  term) and the same again for the input gradient. Pools and ReLUs are noise.
  Time = FLOPs / (the GEMM rate measured here, times an efficiency, since a
  convolution never runs at the pure matmul rate).
* Memory. The forward pass keeps every layer's output for the backward pass, and
  the backward pass holds about as much again in gradients; the interpreter and
  the weights, and the fast convolution's bounded im2col bands, come on top
  (:data:`BASE_BYTES`, :data:`BAND_BYTES`, measured). Optimizer state (L-BFGS keeps
  2 x history images) is added last. Before the run, each style image passes
  forward once (:func:`style_memory_bytes`); the peak is the larger of the two.

The estimate is rough (within a factor of about 1.5 either way); its job is to
refuse a run that cannot fit before it starts, and to set expectations.
"""

import os
import time

import numpy as np

from scratchnst.errors import ScratchNSTError
from scratchnst.method.tiled import largest_crop, stride
from scratchnst.network.architecture import CONV_CHANNELS, activation_shapes
from scratchnst.network.architecture import deepest as deepest_layer

# Fraction of the raw matmul rate a whole VGG iteration reaches (measured with
# benchmarks/bench_cpu.py; conservative, so time estimates err long).
EFFICIENCY = 0.5


def layer_shapes(H, W, deepest="relu5_1"):
    """(name, C_in, C_out, h, w) of each conv up to ``deepest``, in order (h, w: its input's size)."""
    shapes = activation_shapes(H, W, deepest)
    return [
        (name, CONV_CHANNELS[name][1], c_out, h, w) for name, (c_out, h, w) in shapes.items() if name in CONV_CHANNELS
    ]


def conv_flops(H, W, deepest="relu5_1"):
    """FLOPs of one forward pass through the convolutions up to ``deepest`` (3x3 kernels)."""
    return sum(2 * 9 * c_in * c_out * h * w for _, c_in, c_out, h, w in layer_shapes(H, W, deepest))


# Measured with benchmarks/bench_cpu.py (peak RSS of a whole iteration): the
# interpreter, NumPy, h5py and the float32 weights come to about 200 MB before any
# image, and the fast path's im2col bands add at most two 64 MiB blocks.
BASE_BYTES = 200 * 2**20
BAND_BYTES = 2 * 64 * 2**20


def kernel_cache_bytes(deepest="relu5_1", itemsize=4, m=4):
    """Winograd's transformed kernels, kept for the whole run: for every conv it
    handles, (m + 2)^2 points x O x C values, once for the forward and once for the
    flipped (gradient) kernel (:mod:`scratchnst.network.fast.winograd`)."""
    from scratchnst.network.fast.winograd import MIN_CHANNELS

    return sum(
        2 * (m + 2) ** 2 * c_in * c_out * itemsize
        for _, c_in, c_out, _, _ in layer_shapes(16, 16, deepest)
        if min(c_in, c_out) >= MIN_CHANNELS[m]
    )


def weight_bytes(itemsize=4):
    """The 16 convolutions' kernels and biases, as the network holds them (all of them, whatever the depth)."""
    return itemsize * sum(c_out * c_in * 9 + c_out for c_out, c_in in CONV_CHANNELS.values())


def gpu_band_bytes(H, W, deepest="relu5_1", itemsize=4):
    """Two of the largest working buffer any fast convolution allocates on the GPU.

    A band's buffer is the layer's whole im2col (9 C values per output pixel) or
    Winograd tile buffers (about 2.25 (2 C + O) + O values per output pixel, F(4x4)),
    capped at ``BAND_BYTES["cupy"]`` (:mod:`scratchnst.network.fast.bands`); CuPy's
    memory pool keeps a freed buffer for the next layer, so two are counted.
    """
    from scratchnst.network.fast.bands import BAND_BYTES as GPU_BANDS

    largest = max(max(9 * c_in, 2.25 * (2 * c_in + c_out) + c_out) * h * w * itemsize
                  for _, c_in, c_out, h, w in layer_shapes(H, W, deepest))
    return 2 * min(largest, GPU_BANDS["cupy"])


def memory_bytes(H, W, *, itemsize=4, deepest="relu5_1", optimizer_images=0, conv="winograd", device="cpu"):
    """Estimated peak bytes of one forward + backward pass, plus optimizer state.

    The forward pass keeps one activation per conv layer (its ReLU runs in place)
    and one per pool; during the backward pass gradients are alive too, though
    never all at once: a factor 1.75 fits the measured peaks. ``optimizer_images``: how many image-sized
    arrays the optimizer keeps (L-BFGS with history m: about 2m + 4; Adam: 4).
    ``conv="winograd"`` (the default) adds :func:`kernel_cache_bytes`.
    Against benchmarks/bench_cpu.py's peak RSS: within 20% at 256, 512 and 1024 px,
    erring high, the safe side for refusing a run.

    ``device="gpu"`` estimates the device's memory instead: no interpreter or
    host libraries, but the weights (:func:`weight_bytes`) and the GPU's much
    larger band buffers (:func:`gpu_band_bytes`). Not yet checked against a
    GPU's measured pool peak (benchmarks/gpu_check.sh records it where a GPU is lent).
    """
    shapes = layer_shapes(H, W, deepest)
    kept = sum(c_out * h * w for _, _, c_out, h, w in shapes)  # conv/ReLU outputs
    kept += sum(c_out * h * w // 4 for _, _, c_out, h, w in shapes)  # pools (an upper bound)
    image = 3 * H * W
    kernels = kernel_cache_bytes(deepest, itemsize) if conv == "winograd" else 0
    arrays = kernels + itemsize * (1.75 * kept + optimizer_images * image)
    if device == "gpu":
        return weight_bytes(itemsize) + gpu_band_bytes(H, W, deepest, itemsize) + arrays
    return BASE_BYTES + BAND_BYTES + arrays


def optimizer_images(optimizer, history):
    """How many image-sized arrays an optimizer keeps: L-BFGS its 2 x ``history`` pairs and 6 more, Adam 6."""
    return 2 * history + 6 if optimizer == "lbfgs" else 6


def style_memory_bytes(style_shapes, *, itemsize=4, deepest="relu5_1", device="cpu"):
    """Estimated peak bytes while the style targets are computed, before the first iteration.

    Each style image (h, w) goes through the network once, forward only, one after
    the other (:class:`scratchnst.Objective`), while all of them are held as loaded
    (uint8) and as network inputs (``itemsize``). :func:`memory_bytes` of the largest,
    which counts a backward pass too, errs high. A style image much larger than the
    output (``--style-scale``) can need more memory than the whole run.
    """
    if not style_shapes:
        return 0
    inputs = sum(3 * h * w * (1 + itemsize) for h, w in style_shapes)
    return inputs + max(memory_bytes(h, w, itemsize=itemsize, deepest=deepest, device=device)
                        for h, w in style_shapes)


def matmul_gflops(n=768, repeats=3, dtype=np.float32):
    """The float32 GEMM rate of this machine's NumPy, in GFLOP/s (takes ~0.1 s)."""
    a = np.ones((n, n), dtype)
    a @ a  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def available_memory_bytes():
    """Memory this process may still use: MemAvailable on Linux, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def seconds_per_iteration(H, W, gflops, deepest="relu5_1"):
    """Forward + input-gradient time at ``gflops`` GEMM rate and :data:`EFFICIENCY`."""
    return 2 * conv_flops(H, W, deepest) / (gflops * 1e9 * EFFICIENCY)


# ------------------------------------------------------------------ tiled evaluation

TILED_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")  # the default run's


def tiled_memory_bytes(H, W, tile, *, layers=TILED_LAYERS, content_layers=("relu4_2",), itemsize=4,
                       optimizer_images=0, conv="winograd", device="cpu"):
    """Estimated peak bytes of a tiled evaluation (:mod:`scratchnst.method.tiled`), plus optimizer state.

    The largest crop (tile plus halo) costs what :func:`memory_bytes` says a whole
    image of its size does; on top come the arrays of the whole image: the content
    targets at ``content_layers``, and ``optimizer_images`` + 4 images (the input,
    its gradient, and the TV cost's temporaries).
    """
    d = deepest_layer(layers)
    crop = memory_bytes(*largest_crop((H, W), layers, tile), itemsize=itemsize, deepest=d, conv=conv, device=device)
    shapes = activation_shapes(H, W, deepest_layer(content_layers))
    targets = sum(c * h * w for c, h, w in (shapes[n] for n in content_layers))
    return crop + itemsize * (targets + (optimizer_images + 4) * 3 * H * W)


def choose_tile(H, W, budget_bytes, **kw):
    """The largest tile whose :func:`tiled_memory_bytes` fits ``budget_bytes``; None if no tiling is needed.

    None when the untiled evaluation (:func:`memory_bytes`) fits. Candidates are the
    tile sides that cut the long side into 1, 2, 3, ... pieces, largest first. Keywords
    are :func:`tiled_memory_bytes`'s. Raises :class:`ScratchNSTError` when even the
    smallest tile (one stride, 16 px at relu5_1) does not fit.
    """
    d = deepest_layer(kw.get("layers", TILED_LAYERS))
    untiled = {k: v for k, v in kw.items() if k in ("itemsize", "optimizer_images", "conv", "device")}
    if memory_bytes(H, W, deepest=d, **untiled) <= budget_bytes:
        return None
    S, side = stride(d), max(H, W)
    for tile in sorted({S * -(-side // (pieces * S)) for pieces in range(1, -(-side // S) + 1)}, reverse=True):
        if tiled_memory_bytes(H, W, tile, **kw) <= budget_bytes:
            return tile
    raise ScratchNSTError(f"{H} x {W} px does not fit in {budget_bytes / 2**30:.2f} GiB even in {S} px tiles; "
                          "use a smaller size")
