# %% [markdown]
# # 06 · Running on a GPU with CuPy
#
# Everything in scratchnst is NumPy code. CuPy is a copy of NumPy's interface whose
# arrays live in GPU memory and whose functions launch CUDA kernels. If the code never
# names `numpy` directly but asks the *data* which module to use, the same lines run on
# either. This tutorial shows how scratchnst does that, and how to measure what it buys.
#
# **What you will do**
#
# * see the one idea the package rests on, `xp = array_module(x)`, and where the CuPy
#   import lives;
# * run the same functions on NumPy and, if this machine has a GPU, on CuPy, and compare;
# * compare float32 with float64 in accuracy and speed;
# * build a proper timer (warm-up, synchronisation, median of repeats) and time one
#   forward + backward pass of VGG19 at a few image sizes;
# * see where data should cross between GPU and host, and where it should not.
#
# **What you will learn**: why GPU timings without a synchronisation are meaningless;
# how `cupy.cuda.Event` and `cupyx.profiler.benchmark` measure GPU time; why the
# median of several repeats is the number to report on a shared machine; what float64
# costs on a GPU.
#
# **What you need**: tutorials 02–05. For the GPU parts, CuPy and an NVIDIA GPU
# (`pip install 'scratchnst[gpu]'`). **Without them this notebook still runs**: it
# measures NumPy on the CPU and says what would change on a GPU. Open beside it:
#
# * `scratchnst/backend.py` — `array_module`, `get_xp`, `to_numpy`, `to_float`, `gpu_available`;
# * `scratchnst/files/weights.py` — `load_vgg19(backend=...)`; `scratchnst/network/vgg.py` and
#   `scratchnst/network/fast/`, the ops it runs (by default Winograd's convolution,
#   `fast/winograd.py`, which is what every timing below measures);
# * `scratchnst/method/lbfgs.py` and `scratchnst/method/objective.py` — where scalars cross to the host;
# * `scratchnst/transfer/estimate.py` — FLOP and memory counts; `benchmarks/bench_gpu.py` — the full GPU
#   benchmark.

# %%
import inspect
import os
import platform
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchnst
from scratchnst import backend
from scratchnst.files import images
from scratchnst.transfer import estimate

SIZE = os.environ.get("SCRATCHNST_TUTORIAL_SIZE", "full")
if SIZE == "small":
    SIZES, REPEATS = (32, 48), 3          # CI: seconds
else:
    SIZES, REPEATS = (64, 128, 256), 5    # under a minute on a laptop CPU
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
LAYERS = STYLE_LAYERS + ("relu4_2",)

GPU = backend.gpu_available()   # never raises: False without CuPy, without a driver, or without a device
plt.rcParams.update({"font.size": 11, "axes.titlesize": 11, "figure.dpi": 100})
print(f"size={SIZE}; image sizes {SIZES}, {REPEATS} timed repeats; GPU available: {GPU}")
print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, NumPy {np.__version__}")

# %% [markdown]
# ## 1. One module decides, the data chooses
#
# Every function in scratchnst starts the same way:
#
# ```python
# xp = array_module(x)     # numpy for a NumPy array, cupy for a CuPy array
# ...                      # then only xp.sum, xp.maximum, x @ y, slicing, ...
# ```
#
# so `tv_cost(x)` runs on the CPU when `x` is a `numpy.ndarray` and on the GPU when it
# is a `cupy.ndarray`, with no `if` anywhere. Only `scratchnst/backend.py` imports CuPy,
# lazily, the first time a CuPy array or the `"cupy"` backend is asked for. That keeps
# CuPy an optional dependency and puts its one failure mode (installed, but no usable
# device) in one place with one clear error:

# %%
print(inspect.getsource(backend.array_module))
print(inspect.getsource(backend.to_numpy))

# %% [markdown]
# `array_module` never imports CuPy for a NumPy array (it looks at the type's module
# name first), so a CPU-only user never pays for the import. The other entry point is
# by name: `get_xp("numpy" | "cupy")`, used by `load_vgg19(backend=...)` to put the
# weights on the right device. From then on the data carries the choice: the network's
# weights are CuPy arrays, so every activation and gradient computed from them is too.
#
# Writing code this way has a few rules, all followed in the package:
#
# * use only functions both modules have (`xp.pad`, `xp.roll`, `xp.sqrt`, `@`, slicing);
# * never index-add with repeated indices (`a[idx] += v` is wrong on NumPy and undefined on CuPy):
#   `scratchnst/network/layers.py` writes `col2im` as a loop of slice-adds over the kernel offsets;
# * draw random numbers on the host with `np.random.default_rng(seed)` and move them,
#   so both backends see the same numbers (`scratchnst.inside.synthesis.noise_image`);
# * a reduction like `xp.sum(a)` returns a 0-d array *on the device*; turning it into a
#   Python `float` copies it to the host and waits for the GPU to finish (section 4).
#
# ## 2. The same code, another array module
#
# Here is one style cost and its gradient evaluated through `scratchnst.method.costs`, on
# every backend this machine has. On a CPU-only machine the loop has one entry.

# %%
from scratchnst.method.costs import gram, style_layer_cost, tv_cost  # noqa: E402

rng = np.random.default_rng(0)
a_host = rng.standard_normal((64, 24, 24)).astype(np.float32)   # an activation (N_l, h, w)
A_host = gram(rng.standard_normal((64, 24 * 24)).astype(np.float32))
k = 1.0 / (4 * 64**2 * (24 * 24) ** 2)

results = {}
for name in ("numpy", "cupy") if GPU else ("numpy",):
    xp = backend.get_xp(name)
    a, A = xp.asarray(a_host), xp.asarray(A_host)       # host -> device (a no-op for numpy)
    J, da = style_layer_cost(a, A, k)                   # the same function, whichever xp
    J_tv, _ = tv_cost(a)
    print(f"{name:5s}: J is a {type(J).__module__}.{type(J).__name__}, da a {type(da).__module__}.{type(da).__name__}")
    results[name] = (backend.to_float(J), backend.to_numpy(da))
if GPU:
    rel = np.abs(results["cupy"][1] - results["numpy"][1]).max() / np.abs(results["numpy"][1]).max()
    print(f"cupy vs numpy: J {results['cupy'][0]:.6g} vs {results['numpy'][0]:.6g}, "
          f"gradient max rel. difference {rel:.1e}")
else:
    print("No GPU here: with CuPy and a CUDA device the loop runs a second time, on the GPU, "
          "and the results agree to float32 rounding (about 1e-6 relative; sums run in another order).")

# %% [markdown]
# The same holds for the whole network: `load_vgg19(backend="cupy")` gives a VGG19 whose
# `forward`, `backward`, `Objective` and `minimize` run on the GPU unchanged; only
# `net.deprocess(x)` (via `to_numpy`) brings the final image back. The test suite runs
# every test over both backends with a parametrised `xp` fixture (`tests/conftest.py`),
# skipping the CuPy half where there is no GPU.
#
# ## 3. float32 or float64
#
# float64 has a 53-bit significand (about 16 decimal digits), float32 a 24-bit one (about 7).
# Gradient checks need float64: a central difference loses about half the digits. Style
# transfer does not: its result is an image with 8-bit pixels, and float32 halves the memory
# and, on GPUs, is much faster. How far apart are the two on VGG19?

# %%
content_rgb = images.load_image(images.bundled_image("astronaut"), long_side=SIZES[0])
nets = {dt: scratchnst.load_vgg19(dtype=dt) for dt in ("float32", "float64")}
acts, grads = {}, {}
for dt, net in nets.items():
    x = net.preprocess(content_rgb)
    out = net.forward(x, LAYERS)
    acts[dt] = {n: out[n].copy() for n in LAYERS}                  # copy: the next forward may reuse buffers
    grads[dt] = net.backward({n: np.ones_like(out[n]) for n in LAYERS})   # d(sum of all activations)/dx
for n in LAYERS:
    a32, a64 = acts["float32"][n], acts["float64"][n]
    print(f"{n}: max |a32 - a64| / max |a64| = {np.abs(a32 - a64).max() / np.abs(a64).max():.1e}")
g32, g64 = grads["float32"], grads["float64"]
print(f"input gradient:  max rel. difference {np.abs(g32 - g64).max() / np.abs(g64).max():.1e}")

# Where the two precisions take different branches of a kink: a ReLU input on the other side of 0,
# or a 2x2 max-pool window with another winner. The pass to relu5_1 runs pool1 to pool4.
relus = [n for n in scratchnst.LAYERS[: scratchnst.LAYERS.index("relu5_1") + 1] if n.startswith("relu")]
pool_inputs = ["relu1_2", "relu2_2", "relu3_4", "relu4_4"]
pre = {}
for dt, net in nets.items():
    out = net.forward(net.preprocess(content_rgb), relus)
    pre[dt] = {n: out[n].copy() for n in relus}
gate_flips = sum(int(np.sum((pre["float32"][n] > 0) != (pre["float64"][n] > 0))) for n in relus)


def winners(a):
    C, h, w = a.shape
    win = a[:, : h // 2 * 2, : w // 2 * 2].reshape(C, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 2, 4)
    return win.reshape(C, h // 2, w // 2, 4).argmax(axis=-1)


swaps = sum(int(np.sum(winners(pre["float32"][n]) != winners(pre["float64"][n]))) for n in pool_inputs)
print(f"ReLU outputs zero in one precision and positive in the other: {gate_flips};  "
      f"max-pool windows with another winner: {swaps}")

# %% [markdown]
# The **activations** differ by relative amounts of order $10^{-7}$ to $10^{-6}$ (the first lines):
# float32 rounding ($2^{-24} \approx 6\times10^{-8}$ per operation) accumulated over sums of thousands
# of terms per convolution and 16 layers, far below what changes a pixel.
#
# The **input gradient** can differ far more (the line after them), and that is not a larger
# rounding error but a different branch. ReLU and max pooling are piecewise linear: at a ReLU
# input within rounding of 0, or a max-pool window whose two largest entries are within rounding
# of each other (a near-tie), float32 and float64 can land on different sides of the kink. The
# last line counts how often that happened here. Where it did, the two gradients are each the
# exact gradient of a slightly different piece of the function: a window's whole gradient goes
# to one pixel in one precision and to its neighbour in the other, a difference as large as the
# gradient itself, at that pixel. Over a whole image these are a few pixels among many; they
# change nothing that matters for style transfer, but they are why a gradient check is done in
# float64 with inputs kept away from kinks (tutorial 02). The speed difference we measure in
# the next section.
#
# ## 4. Measuring properly
#
# A timer has to answer one question: how long does this operation take when it is run
# for real, many times? Four things get in the way.
#
# 1. **Warm-up.** The first call pays one-off costs: on the CPU, page faults for fresh
#    memory and starting BLAS threads; on the GPU, compiling CuPy's kernels (cached on disk
#    afterwards), creating the cuBLAS handle and growing CuPy's memory pool. Run the
#    operation once or twice before timing it.
# 2. **Asynchrony (GPU).** A CuPy call *launches* a kernel and returns at once; the GPU
#    works through its queue (the stream) while Python carries on. `time.perf_counter()`
#    around a CuPy call measures the launch, microseconds, unless you **synchronise**
#    before reading the clock: `cupy.cuda.get_current_stream().synchronize()`. Anything
#    that copies a result to the host (`float(x)`, `x.get()`, `to_numpy`) synchronises too.
# 3. **GPU-side timing.** `cupy.cuda.Event` records a timestamp *in the stream*:
#    `start.record(); f(); end.record(); end.synchronize()` and then
#    `cupy.cuda.get_elapsed_time(start, end)` gives milliseconds of GPU time, free of Python
#    overhead. `cupyx.profiler.benchmark(f, (), n_repeat=..., n_warmup=...)` does all of
#    this for you and reports CPU and GPU times per repeat.
# 4. **Noise.** Other processes, frequency scaling and the memory allocator make repeats
#    differ. Take several and report the **median**: unlike the mean, one slow outlier (a
#    neighbour's job waking up) does not move it. Show the spread too.
#
# Here is the timer, written once for both backends: `sync` is a no-op for NumPy (its
# calls return when the work is done) and a stream synchronisation for CuPy.

# %%
def sync_for(net):
    """A function that waits until the device of ``net`` has finished its queued work."""
    if net.backend == "cupy":
        cp = backend.get_xp("cupy")
        return cp.cuda.get_current_stream().synchronize
    return lambda: None


def measure(fn, *, repeats=5, warmup=1, sync=lambda: None):
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs; and all of them."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()                                   # start from an idle device
        t = time.perf_counter()
        fn()
        sync()                                   # wait for the work, not just its launch
        times.append(time.perf_counter() - t)
    return float(np.median(times)), times


def forward_backward(net, x):
    """One style-transfer iteration's worth of network work: forward to relu5_1, backward to the image."""
    out = net.forward(x, LAYERS)
    return net.backward({n: out[n] for n in LAYERS})   # any upstream gradient costs the same


configs = [("numpy", "float32"), ("numpy", "float64")] + ([("cupy", "float32"), ("cupy", "float64")] if GPU else [])
all_nets = {(name, dt): nets[dt] if name == "numpy" else scratchnst.load_vgg19(dtype=dt, backend=name)
            for name, dt in configs}
timings = {c: {} for c in configs}   # (backend, dtype) -> {size: (median, all times)}

# The ceiling: nothing built on NumPy's matrix product can beat the product itself.
n = 1536
m = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
t_mm, _ = measure(lambda: m @ m, repeats=REPEATS)
matmul_rate = 2 * n**3 / t_mm / 1e9
print(f"NumPy float32 matmul {n}x{n}: median {t_mm * 1e3:.1f} ms, {matmul_rate:.0f} GFLOP/s")
print("convolution algorithm timed:", {c: n_.conv for c, n_ in all_nets.items()})
# Sizes outside, configurations inside: the configurations compared at one size are measured
# one right after the other, so they see the same load on a shared machine.
for size in SIZES:
    rgb = images.load_image(images.bundled_image("astronaut"), long_side=size)
    flops = 2 * estimate.conv_flops(*rgb.shape[:2])   # forward + input gradient
    for (name, dt), net in all_nets.items():
        x = net.preprocess(rgb)                  # on the net's device
        med, times = measure(lambda net=net, x=x: forward_backward(net, x), repeats=REPEATS, sync=sync_for(net))
        timings[(name, dt)][size] = (med, times)
        print(f"{name:5s} {dt}  {rgb.shape[0]:3d}x{rgb.shape[1]:3d}: median {med * 1e3:8.1f} ms "
              f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}),  {flops / med / 1e9:6.1f} GFLOP/s")

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.3), layout="constrained")
for (name, dt), per_size in timings.items():
    sizes = sorted(per_size)
    meds = [per_size[s][0] for s in sizes]
    line, = axes[0].plot(sizes, meds, marker="o", label=f"{name} {dt} (median)")
    for s in sizes:
        axes[0].scatter([s] * len(per_size[s][1]), per_size[s][1], color=line.get_color(), s=12, alpha=0.5)
    rates = [2 * estimate.conv_flops(s, s) / m / 1e9 for s, m in zip(sizes, meds)]
    axes[1].plot(sizes, rates, marker="o", label=f"{name} {dt}")
axes[1].axhline(matmul_rate, color="k", linestyle="--", label=f"NumPy float32 matmul ({matmul_rate:.0f})")
axes[0].set_yscale("log")
axes[0].set_title("forward + backward time (dots: each repeat)")
axes[0].set_ylabel("seconds (log scale)")
axes[1].set_title("throughput")
axes[1].set_ylabel("effective GFLOP/s (direct-convolution FLOPs / time)")
for ax in axes:
    ax.set_xlabel("image side (px)")
    ax.set_xticks(SIZES)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=10)
plt.show()
t32 = {size: med for size, (med, _) in timings[("numpy", "float32")].items()}
t64 = {size: med for size, (med, _) in timings[("numpy", "float64")].items()}
sizes = sorted(t32)
for a, b in zip(sizes, sizes[1:]):
    print(f"numpy float32, {a} -> {b} px: time x{t32[b] / t32[a]:.1f} (pixels x{(b / a) ** 2:.0f})")
for size in sizes:
    print(f"numpy float64 / float32 at {size} px: {t64[size] / t32[size]:.1f}")

# %% [markdown]
# What to read in these numbers (the timing cell and the lines just above print them for the
# machine that ran this notebook; a shared machine gives different numbers on every run):
#
# * **Time grows with the pixel count**: the work is 4x per doubling of the side, and the
#   time approaches that ratio once the image is large enough that the fixed costs (Python,
#   function calls, small matrices that do not fill the cores) are small. At 64 px the
#   throughput is a fraction of the largest size's (compare the printed GFLOP/s): VGG19's deep
#   layers are 4x4 or 8x8 there, too little work to keep the machine busy. On a GPU this effect is far larger (below).
# * **The throughput is measured against the matmul line.** The timed convolutions are
#   Winograd's (`scratchnst/network/fast/winograd.py`: tile transforms around batched matrix
#   products), which do fewer multiplications than a direct convolution; the plot divides the
#   *direct* convolution's FLOPs by the time, an effective rate that can come near the matmul
#   line, or above it, without any part running faster than a matmul. What keeps it down is what
#   is not a matrix product: the transforms, the ReLUs, pools and the Python in between, and the
#   small matrices of the deep layers at these sizes.
# * **float64 costs more than float32 on the CPU** (the ratio per size is printed), up to about
#   twice on a quiet machine: twice the bytes to move and half as many numbers per SIMD instruction.
# * **The spread** (the dots) is the machine, not the code. When other jobs start during a
#   measurement, whole sizes shift together and the dots scatter; the median of each
#   configuration stays put better than the mean or a single run. That is also why the loop
#   measures all configurations of one size back to back: what you compare should see the
#   same machine. If your plot disagrees with the numbers above, rerun it and see which
#   numbers move.
#
# ### On a GPU
#
# The cell below runs only with CuPy and a device. It times the same call three ways: the
# host clock *without* synchronising (wrong: it measures the kernel launches), CUDA events
# around it, and `cupyx.profiler.benchmark`.

# %%
if GPU:
    cp = backend.get_xp("cupy")
    from cupyx.profiler import benchmark

    net_gpu = scratchnst.load_vgg19(dtype="float32", backend="cupy")
    x_gpu = net_gpu.preprocess(images.load_image(images.bundled_image("astronaut"), long_side=SIZES[-1]))
    forward_backward(net_gpu, x_gpu)
    cp.cuda.get_current_stream().synchronize()       # warm-up done

    t = time.perf_counter()
    forward_backward(net_gpu, x_gpu)                   # no synchronisation: times the launches only
    unsynced = time.perf_counter() - t
    cp.cuda.get_current_stream().synchronize()

    start, end = cp.cuda.Event(), cp.cuda.Event()
    event_ms = []
    for _ in range(REPEATS):
        start.record()
        forward_backward(net_gpu, x_gpu)
        end.record()
        end.synchronize()
        event_ms.append(cp.cuda.get_elapsed_time(start, end))
    bench = benchmark(forward_backward, (net_gpu, x_gpu), n_repeat=REPEATS, n_warmup=1)
    print(f"host clock, no sync: {unsynced * 1e3:.2f} ms   (misleading)")
    print(f"CUDA events: median {np.median(event_ms):.2f} ms")
    print(f"cupyx.profiler.benchmark: median GPU time {np.median(bench.gpu_times) * 1e3:.2f} ms, "
          f"CPU time {np.median(bench.cpu_times) * 1e3:.2f} ms")
    print(f"free device memory: {backend.device_memory_bytes() / 2**30:.1f} GiB")
else:
    side = max(SIZES)
    cpu_med = timings[("numpy", "float32")][side][0]
    print(f"No GPU on this machine: the NumPy measurement above is the result ({cpu_med * 1e3:.0f} ms at {side} px).")
    print("With CuPy and a CUDA device this cell would time the same forward_backward call on the GPU with")
    print("CUDA events and cupyx.profiler.benchmark, and show that an unsynchronised host timer reports")
    print("only the time to launch the kernels.")
    for s in (512, 1024):
        gb = estimate.memory_bytes(s, s, itemsize=4, optimizer_images=24) / 2**30
        est = estimate.seconds_per_iteration(s, s, matmul_rate)
        print(f"  {s} px: ~{gb:.1f} GiB for one iteration with L-BFGS (m=10) in float32; "
              f"~{est:.0f} s per iteration on this CPU (scratchnst.transfer.estimate)")

# %% [markdown]
# **What changes on a GPU.** The code does not; the numbers do.
#
# * **Speed.** A current data-centre GPU does tens of TFLOP/s in float32, one to two orders
#   of magnitude more than a desktop CPU's BLAS, so a 512 px iteration that takes seconds
#   here takes milliseconds there. At *small* images the GPU gains little: each op is a
#   kernel launch of a few microseconds, and VGG19 at 64 px is mostly launches.
#   That is why the benchmark (`benchmarks/bench_gpu.py`) uses 512 and 1024 px.
# * **float64.** Data-centre GPUs (A100, H100) run float64 at half their float32 rate;
#   consumer GPUs at 1/32 or 1/64 of it. Use float32 for style transfer, float64 for checks.
# * **Memory** is the usual limit: every layer's activations are kept for the backward
#   pass. `scratchnst.transfer.estimate.memory_bytes` counts them before a run starts, and
#   `backend.device_memory_bytes()` says how much the device has free.
# * **TF32.** On Ampere and later GPUs, CuPy can run float32 matmuls with 10-bit
#   mantissas on tensor cores if `CUPY_TF32=1` is set; faster, but about 1e-3 relative
#   error. The benchmark turns it off, to compare like with like.
#
# ## 5. Move data at the edges only
#
# A transfer between host and GPU is slow (PCIe: ~10–25 GB/s, against ~1–3 TB/s for
# GPU memory) and, worse, *synchronises*: the Python thread waits until the GPU has
# finished everything queued. So the rule is: images go to the device once at the start
# (`net.preprocess` creates them there) and come back once at the end (`net.deprocess`,
# through `to_numpy`). In between, only the scalars that a decision needs cross, at
# points chosen on purpose:
#
# * `Objective.value_and_grad` (`scratchnst/method/objective.py`) keeps every layer's cost as a
#   0-d device array and converts all of them in one transfer, once per evaluation;
# * `scratchnst/method/lbfgs.py` computes dot products with `scratchnst.method.lbfgs.dot`, which
#   returns a 0-d array on the device, and calls `to_float` only where the line search compares numbers.
#
# On NumPy all of this is free: `to_numpy` of a NumPy array returns the array itself.

# %%
x = nets["float32"].preprocess(content_rgb)
print("to_numpy(x) is x:", backend.to_numpy(x) is x, "  (NumPy: no copy)")
print("backend of x:", backend.backend_name(x))
rgb = nets["float32"].deprocess(x)   # the one place an image leaves the device
print("deprocess ->", type(rgb).__name__, rgb.dtype, rgb.shape)

if GPU:
    x_gpu = backend.to_backend(x, "cupy")
    for n in (1, 100):
        med, _ = measure(lambda n=n: [backend.to_float(x_gpu.sum()) for _ in range(n)], repeats=REPEATS,
                         sync=cp.cuda.get_current_stream().synchronize)
        print(f"{n:3d} sums, each converted to float (a sync each): {med * 1e3:.2f} ms")
    med, _ = measure(lambda: backend.to_float(sum(x_gpu.sum() for _ in range(100))), repeats=REPEATS,
                     sync=cp.cuda.get_current_stream().synchronize)
    print(f"100 sums kept on the device, one float at the end:  {med * 1e3:.2f} ms")

# %% [markdown]
# ## Summary
#
# * `xp = array_module(x)` makes every function run on the module that owns its data; only
#   `scratchnst/backend.py` imports CuPy, so CPU users never need it.
# * `load_vgg19(backend="cupy")` is the only change a user makes; the network's weights
#   then carry the choice through every activation, gradient and optimiser step.
# * float32 activations agree with float64 to about $10^{-6}$ relative on VGG19; gradients agree
#   except where a near-tie in a ReLU or a max pool falls on the other side in one precision.
#   float32 is the right choice for style transfer; float64 is for gradient checks.
# * Time GPU code with a synchronisation (or CUDA events, or `cupyx.profiler.benchmark`),
#   after a warm-up, and report the median of several repeats with their spread.
# * Cross between device and host only at the edges: images at the start and end, one
#   batch of scalars per loss evaluation.
#
# ## Exercises
#
# 1. Change `measure` to report the mean and the minimum too, and rerun the timing cell
#    while another heavy program runs. Which of the three moves most?
# 2. Time `forward_backward` with `load_vgg19(conv="im2col")` (the readable reference in
#    `scratchnst/network/layers.py`) against `conv="gemm"` (`scratchnst/network/fast/gemm.py`)
#    and the default `conv="winograd"` (`scratchnst/network/fast/winograd.py`).
#    Where does the difference come from? (Count the bytes each one writes.)
# 3. On a GPU: remove the `sync()` calls from `measure` and time `forward_backward` at 64 px
#    and at 512 px. Why is the error so much larger, relatively, at 64 px?
# 4. Using `scratchnst.transfer.estimate.memory_bytes`, find the largest square image whose
#    L-BFGS run fits in 16 GiB of GPU memory in float32 and in float64.
# 5. Write a function `relu_twice(x)` with `xp = backend.array_module(x)` that works on
#    NumPy arrays, and test it with a `pytest` fixture parametrised over the available
#    backends, as `tests/conftest.py` does.
