# %% [markdown]
# # 03 · The content cost and its gradient
#
# Neural style transfer asks for an image whose *content* matches a photograph and
# whose *style* matches a painting. "Content" is measured inside VGG19: two images
# have the same content at layer $l$ when their activations there are the same. This
# notebook writes that down as a cost, derives its gradient, checks it numerically,
# and then uses it on its own: starting from noise, it searches for an image whose
# activations at one layer match a photo's, for layers from shallow to deep. What
# comes back shows what each layer of VGG19 remembers about a picture.
#
# **What you will do**
#
# * translate the Deep Learning Specialization's notation into Gatys et al.'s (a table);
# * write the content cost of Gatys et al. (2016, eq. 1) and the variant of the course's
#   programming assignment, and derive their gradients;
# * check `scratchnst.method.costs.content_cost` against finite differences, alone and
#   through the whole network;
# * reconstruct a photo from noise at `relu1_1`, `relu2_1`, `relu3_1`, `relu4_2` and
#   `relu5_1` with L-BFGS, and compare the results side by side;
# * write the content cost and its gradient yourself, and check it (exercise 0).
#
# **What you will learn**: that the content cost is a plain sum of squares, whose
# gradient is the difference of activations; how the ReLU turns that into Gatys'
# "$F_{ij} > 0$" rule; that the normalising constant changes the loss value but not
# the best image; and that shallow layers keep the pixels while deep layers keep only
# the layout.
#
# **What you need**: tutorial 02 (the backward passes of the layers), and open beside
# you [`scratchnst/method/costs.py`](../scratchnst/method/costs.py) (`content_cost`),
# [`scratchnst/method/presets.py`](../scratchnst/method/presets.py) (`PRESETS`),
# [`scratchnst/network/vgg.py`](../scratchnst/network/vgg.py) (`forward`, `backward`) and
# [`scratchnst/method/optimize.py`](../scratchnst/method/optimize.py) (`minimize`). A few minutes of CPU at
# full size; under a minute with `SCRATCHNST_TUTORIAL_SIZE=small`.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchnst
from scratchnst.files.images import bundled_image, load_image
from scratchnst.inside.synthesis import noise_image
from scratchnst.method.costs import content_cost
from scratchnst.method.presets import PRESETS
from scratchnst.network import gradcheck, layers

SIZE = os.environ.get("SCRATCHNST_TUTORIAL_SIZE", "full")
SIDE = 112 if SIZE == "full" else 40  # long side of the photo, in pixels
ITERS = 80 if SIZE == "full" else 4  # L-BFGS iterations per reconstruction
CHECK_SIDE = 40 if SIZE == "full" else 32  # the float64 whole-network check

plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "figure.dpi": 100})
np.set_printoptions(precision=4, suppress=True, linewidth=110)
rng = np.random.default_rng(0)
print(f"size: {SIZE}  (photo {SIDE} px, {ITERS} L-BFGS iterations per layer)")

# %% [markdown]
# ## 0. From the course's notation to the paper's
#
# The Deep Learning Specialization (course 4, week 4) and its programming assignment write
# neural style transfer in their own notation; these tutorials follow Gatys et al. (2016) and
# the package's code. The two describe the same quantities:
#
# | course (lecture / assignment) | here (Gatys et al.) | in scratchnst |
# |---|---|---|
# | content image $C$, style image $S$, generated image $G$ | $\vec p$, $\vec a$, $\vec x$ | `content`, `style`, `x` |
# | activation $a^{[l]}$, shape $n_H \times n_W \times n_C$ | $F^l$, shape $N_l \times M_l$ | `F = a.reshape(N_l, h * w)` |
# | number of channels $n_C$ | $N_l$ | `a.shape[0]` |
# | number of positions $n_H n_W$ | $M_l$ | `h * w` |
# | style matrix $G^{[l](S)}$ (of the style image) | $A^l$ | `Objective.A[layer]` |
# | style matrix $G^{[l](G)}$ (of the generated image) | $G^l = F^l {F^l}^\top$ | `gram(F)` |
# | layer weight $\lambda^{[l]}$ | $w_l$ | `style_layer_weights` |
# | $J(G) = \alpha J_\text{content} + \beta J_\text{style}$ | $\mathcal L_\text{total} = \alpha \mathcal L_\text{content} + \beta \mathcal L_\text{style}$ | `Objective.value(x)` |
#
# Two warnings. The letter $G$ means two things in the course (the generated image, and a
# Gram matrix); here the image is $\vec x$ and only Gram matrices are $G$. And the course's
# activation is stored height × width × channels, the package's channels × height × width:
# the same numbers in another order, which changes neither a cost nor a Gram matrix.
#
# **The constants.** The per-layer style cost is the same in all three places:
# $\frac{1}{(2 n_H n_W n_C)^2} = \frac{1}{4 N_l^2 M_l^2}$. The content cost's constant is not:
#
# * the **lecture** writes $J_\text{content} = \tfrac12 \lVert a^{[l](C)} - a^{[l](G)} \rVert^2$,
#   the constant $\tfrac12$ of Gatys et al.'s eq. 1 (preset `gatys`);
# * the **programming assignment** writes $\frac{1}{4 n_H n_W n_C}\sum (a^{(C)} - a^{(G)})^2$
#   (preset `course`).
#
# They differ by the fixed factor $\tfrac12 \big/ \tfrac{1}{4 N_l M_l} = 2 N_l M_l$, which depends
# only on the layer's shape: for a given image size it is a constant, so choosing one
# constant or the other is the same as multiplying $\alpha$ by it. The first code cell of section 1 computes
# the factor for our photo and checks it against the two costs.
#
# ## 1. The content cost
#
# Run an image $\vec x$ through VGG19 and stop at layer $l$. The activation there is an
# array $(N_l, h, w)$: $N_l$ feature maps (channels) of $h \times w$ positions. Gatys
# et al. flatten each map into a row, giving a matrix
#
# $$F^l \in \mathbb{R}^{N_l \times M_l}, \qquad M_l = h\,w, \qquad
#   F^l = a^l(\vec x)\text{.reshape}(N_l, M_l),$$
#
# where $F^l_{ij}$ is the activation of filter $i$ at position $j$. Let $P^l$ be the
# same matrix for the content photo $\vec p$. The content cost (Gatys et al. 2016,
# eq. 1) is the squared distance between them:
#
# $$\mathcal{L}_{\text{content}}(\vec p, \vec x, l)
#   = \frac{1}{2}\sum_{i,j}\big(F^l_{ij} - P^l_{ij}\big)^2 .$$
#
# Its gradient with respect to the activations follows in one line, since each term
# depends on one entry:
#
# $$\frac{\partial \mathcal{L}_{\text{content}}}{\partial F^l_{ij}} = F^l_{ij} - P^l_{ij}.$$
#
# Gatys writes eq. 2 with a condition: this holds "if $F^l_{ij} > 0$", and the
# derivative is $0$ otherwise. That is the ReLU. His $F^l$ is the output of a ReLU
# layer, and eq. 2 is really the gradient with respect to the ReLU's *input* (the
# convolution's output): where the ReLU was closed, a small change of its input does
# not move $F$, so the gradient there is zero. In scratchnst the cost's gradient and the
# mask live in different functions: `scratchnst.method.costs.content_cost` returns
# $F - P$, and `scratchnst.network.layers.relu_backward` (called by `net.backward`) multiplies
# by $[F > 0]$ on the way down.
#
# **The programming assignment's variant.** The course's programming assignment writes,
# with $n_H \times n_W \times n_C$ the activation's shape,
#
# $$J_{\text{content}}(C, G) = \frac{1}{4\, n_H\, n_W\, n_C}
#   \sum \big(a^{(C)} - a^{(G)}\big)^2
#   \quad\Longrightarrow\quad
#   \frac{\partial J_{\text{content}}}{\partial a^{(G)}}
#   = \frac{1}{2\, n_H\, n_W\, n_C}\big(a^{(G)} - a^{(C)}\big).$$
#
# Both are $k \sum (a - p)^2$ with gradient $2k(a - p)$, for $k = \tfrac12$ (Gatys, and the
# lecture) or $k = 1/(4 N_l M_l)$ (the assignment, preset `course`, since $n_C = N_l$ and
# $n_H n_W = M_l$). That is the
# signature of `scratchnst.method.costs.content_cost(a, p, k)`, and `scratchnst.method.presets.PRESETS`
# stores each source's $k$ as a function of $(N_l, M_l)$. The constant does not move
# the minimum; it matters only when the content cost is *added* to a style cost (it
# sets the balance between them, together with $\alpha$ and $\beta$) and for the scale
# of the numbers an optimiser sees.
#
# Let us compute both for our photo against a noise image, at `relu4_2`, Gatys'
# content layer.

# %%
net = scratchnst.load_vgg19()  # float32, bundled weights
rgb = load_image(bundled_image("chelsea"), long_side=SIDE)  # uint8 (H, W, 3)
photo = net.preprocess(rgb)  # (3, H, W) float32 in VGG's input space
noise = noise_image(net, photo.shape[1:], seed=0)  # the mean pixel plus noise, (3, H, W)

P = net.forward(photo, ["relu4_2"])["relu4_2"].copy()  # (N, h, w); copy: the next forward may reuse buffers
a = net.forward(noise, ["relu4_2"])["relu4_2"]
N, M = P.shape[0], P.shape[1] * P.shape[2]
print(f"photo {rgb.shape[:2]}, relu4_2 activation {P.shape}: N_l = {N}, M_l = {M}")
for name in ("gatys", "course"):
    k = PRESETS[name].content_k(N, M)
    J, da = content_cost(a, P, k)
    print(f"{name:7s} k = {k:.3e}   J = {float(J):.4e}   max|dJ/da| = {float(np.abs(da).max()):.3e}")
J_gatys = float(content_cost(a, P, PRESETS["gatys"].content_k(N, M), grad=False)[0])
J_course = float(content_cost(a, P, PRESETS["course"].content_k(N, M), grad=False)[0])
print(f"lecture / assignment constant: 2 N_l M_l = {2 * N * M};  J_gatys / J_course = {J_gatys / J_course:.1f}")

# %% [markdown]
# Same cost, up to the factor $2 N_l M_l$ the cell prints (it depends on the image size);
# the gradients differ by the same factor.
#
# ## 2. Checking the gradient
#
# First the cost on its own, in float64 with random activations (not zeros: a wrong
# gradient can hide behind zeros). `scratchnst.network.gradcheck.numerical_grad` perturbs one
# entry at a time with central differences; tutorial 02 explains the method. The last
# line is a deliberately wrong gradient that forgets the 2 from differentiating the
# square.

# %%
a64 = rng.standard_normal((8, 5, 6))  # a small "activation" (N=8, h=5, w=6)
p64 = rng.standard_normal((8, 5, 6))
for name in ("gatys", "course"):
    k = PRESETS[name].content_k(8, 30)
    J, da = content_cost(a64, p64, k)
    num = gradcheck.numerical_grad(lambda z: content_cost(z, p64, k, grad=False)[0], a64)
    print(f"{name:7s} relative error {gradcheck.rel_error(da, num):.1e}")
wrong = k * (a64 - p64)  # forgot the 2
print(f"wrong   relative error {gradcheck.rel_error(wrong, num):.2f}  <- caught")

# %% [markdown]
# Now through the network. The loss depends on the image through VGG19,
# $\vec x \to F^l(\vec x) \to \mathcal L$, so its gradient with respect to the pixels is
# the network's backward pass fed with $\partial\mathcal L/\partial F^l$:
#
# ```python
# a = net.forward(x, [layer])[layer]
# J, da = content_cost(a, P, k)
# dx = net.backward({layer: da})     # (3, H, W)
# ```
#
# We check it with one directional derivative (`scratchnst.network.gradcheck.check_directional`),
# in float64, and confirm that the ReLU's backward applies exactly Gatys' mask: the
# gradient reaching the output of `conv4_2` equals $F - P$ where $F > 0$ and $0$
# elsewhere.

# %%
net64 = scratchnst.load_vgg19(dtype="float64")
photo64 = net64.preprocess(load_image(bundled_image("chelsea"), long_side=CHECK_SIDE))
x64 = photo64 + 20 * rng.standard_normal(photo64.shape)  # some other image: the photo plus noise
P64 = net64.forward(photo64, ["relu4_2"])["relu4_2"].copy()
k = PRESETS["gatys"].content_k(P64.shape[0], P64.shape[1] * P64.shape[2])  # = 1/2


def loss64(z):
    return content_cost(net64.forward(z, ["relu4_2"])["relu4_2"], P64, k, grad=False)[0]


F = net64.forward(x64, ["relu4_2"])["relu4_2"]
J, dF = content_cost(F, P64, k)  # dJ/dF = F - P for k = 1/2
dx = net64.backward({"relu4_2": dF})
err, analytic, numeric = gradcheck.check_directional(loss64, x64, dx, seed=0, h=1e-5)
print(f"through VGG19: <grad, v> = {analytic:.10e}, finite difference = {numeric:.10e}, relative error {err:.1e}")

d_conv = layers.relu_backward(dF, F)  # what net.backward does one step down
gatys_eq2 = np.where(F > 0, F - P64, 0.0)
print(f"relu_backward(F - P) vs Gatys eq. 2: max difference {np.abs(d_conv - gatys_eq2).max():.1e};"
      f" {np.mean(F <= 0):.0%} of the entries are masked")

# %% [markdown]
# ## 3. Content reconstruction: what does each layer keep?
#
# Now use the cost alone. Start from noise and minimise
# $\mathcal L_{\text{content}}(\vec p, \vec x, l)$ over the pixels $\vec x$. Any image
# with the photo's activations at layer $l$ is a minimiser, so the result shows what
# the layer has kept of the photo: if it keeps everything, we get the photo back; if
# it has thrown information away, the optimiser fills that in with whatever the noise
# suggested.
#
# The optimiser is L-BFGS (`scratchnst.minimize(fun, x0, method="lbfgs")`), which
# builds a picture of the curvature from its last few gradients and converges far
# faster than gradient descent on these smooth costs. `fun(x)` returns the loss and
# its gradient. Here we use $k = 1/(N_l M_l)$, the mean squared difference, so that the
# numbers are comparable between layers of very different sizes (the constant, again,
# does not change the minimiser). The same loop is packaged as
# `scratchnst.inside.synthesis.reconstruct`; and `scratchnst.Objective` with `beta=0` gives
# the same loss with Gatys' constant inside a full style transfer objective.

# %%
LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"]
x0 = noise_image(net, photo.shape[1:], seed=0)  # the same start for every layer


def content_reconstruction(layer, iters):
    P = net.forward(photo, [layer])[layer].copy()  # the target, (N, h, w)
    N, M = P.shape[0], P.shape[1] * P.shape[2]

    def fun(x):
        a = net.forward(x, [layer])[layer]
        J, da = content_cost(a, P, 1.0 / (N * M))
        return J, net.backward({layer: da})  # dJ/dx, (3, H, W)

    history = []
    res = scratchnst.minimize(fun, x0, method="lbfgs", max_iter=iters,
                              callback=lambda opt: history.append(opt.f))
    return res, [float(fun(x0)[0])] + history, P.shape


results = {}
for layer in LAYERS:
    t0 = time.perf_counter()
    res, history, shape = content_reconstruction(layer, ITERS)
    results[layer] = (res, history, shape)
    rms = np.sqrt(np.mean((net.deprocess(res.x).astype(float) - rgb.astype(float)) ** 2))
    print(f"{layer}  activation {shape}:  loss {history[0]:.3e} -> {history[-1]:.3e}  "
          f"({res.n_iter} iterations, {res.n_evals} evaluations, {time.perf_counter() - t0:.0f} s);  "
          f"pixel RMS error {rms:.1f} / 255;  stopped: {res.message}")

# %% [markdown]
# The grid below shows the photo and the five reconstructions, each from the same
# noise. Each panel's title gives the layer and the size of its activation
# ($N_l \times h \times w$).

# %%
fig, axes = plt.subplots(2, 3, figsize=(13, 6.6), layout="constrained")
panels = [("content photo", rgb)] + [
    (f"from {layer}  ({s[0]}×{s[1]}×{s[2]})", net.deprocess(results[layer][0].x))  # uint8 RGB
    for layer, (_, _, s) in results.items()
]
for ax, (title, img) in zip(axes.flat, panels):
    ax.imshow(img)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"Content reconstructions from noise, {ITERS} L-BFGS iterations each", fontsize=13)
plt.show()

# %% [markdown]
# How fast each optimisation went, as the loss relative to its starting value:

# %%
fig, ax = plt.subplots(figsize=(9, 4.2))
for layer, (_, history, _) in results.items():
    ax.semilogy(np.array(history) / history[0], label=layer, lw=2)
ax.set_xlabel("L-BFGS iteration")
ax.set_ylabel("content loss / initial loss")
ax.set_title("Content reconstruction: loss per iteration")
ax.xaxis.get_major_locator().set_params(integer=True)
ax.grid(True, which="both", alpha=0.3)
ax.legend(title="layer", loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# **What the figures show.** From `relu1_1` and `relu2_1` the photo comes back almost
# exactly (a few grey levels of RMS error, mostly faint high-frequency noise): these
# layers have many more numbers than the image (64 channels at full resolution, 128
# at half), and each unit sees only a few pixels, so little is lost. (`relu1_1` may
# stop before the last iteration: its gradient falls below L-BFGS's tolerance.) From
# `relu3_1` the picture is still clearly the cat, but edges grow fringes of false
# colour. From `relu4_2` and `relu5_1` the layout survives (where the cat is, the
# outline of the head, the eyes, the stripes) but the exact pixel values, colours and
# fine texture do not: the eyes turn into swirls and the fur into a pattern of
# strokes. Those layers have been trained to recognise *what* is in the image, and
# many images share the same answer. The loss curves say the same from the other side: shallow
# layers are easy to match, and the deep ones converge slowly because many directions
# in pixel space barely change their activations.
#
# This is why Gatys et al. match content at a deep layer (`relu4_2`, or `conv4_2` in
# the paper): it pins down *what goes where* and leaves the pixels free for the style
# cost to paint.
#
# ## Summary
#
# * The content cost compares activations directly:
#   $\mathcal L = k\sum_{ij}(F_{ij} - P_{ij})^2$ with $k = \tfrac12$ (Gatys) or
#   $k = 1/(4 n_H n_W n_C)$ (the course's programming assignment; its lecture uses $\tfrac12$,
#   a fixed factor $2 N_l M_l$ away); `scratchnst.method.costs.content_cost` returns it
#   and $2k(F - P)$.
# * Gatys' "$F_{ij} > 0$" condition is the ReLU's backward pass
#   (`scratchnst.network.layers.relu_backward`); the gradient with respect to the pixels is
#   `net.backward({layer: dF})`.
# * Finite differences confirm both, alone (entry by entry) and through VGG19 (one
#   directional derivative).
# * Reconstructing from noise shows what a layer keeps: shallow layers keep the
#   pixels, deep layers keep the layout. Style transfer takes its content from a deep
#   layer for exactly that reason.
#
# ## Exercises
#
# **0. Write it yourself: the content cost and its gradient.** Fill in `content_cost` below from
# its docstring (section 1 has the derivation; don't peek at `scratchnst/method/costs.py`), then
# run the check cell: it compares the value with the formula and the gradient with central
# differences (`gradcheck.numerical_grad`), and says "correct" below $10^{-7}$. An answer is in
# `tutorials/solutions.py`.

# %%
from exercises import check_exercise  # tutorials/exercises.py  # noqa: E402


def my_content_cost(a, p, k):
    """Content cost J = k * sum((a - p)^2) and its gradient.

    Parameters
    ----------
    a : ndarray (N, h, w), the generated image's activation at the content layer
    p : ndarray (N, h, w), the content photo's activation there
    k : float, the constant (1/2 for Gatys and the lecture, 1/(4 N h w) for the assignment)

    Returns
    -------
    J : float
    da : ndarray (N, h, w), dJ/da
    """
    raise NotImplementedError  # your code here: two lines


# %%
check_exercise("content_cost", my_content_cost)

# %% [markdown]
# 1. Reconstruct from `conv4_2` instead of `relu4_2`. Is the result different? Why might
#    matching the pre-ReLU values constrain the image more?
# 2. Start the reconstruction from a different noise seed, or from a photo of something
#    else (`bundled_image("astronaut")`). Which layers give the same result regardless
#    of the start, and which do not?
# 3. Replace L-BFGS by Adam (`method="adam", lr=...`, in input units: pixel values for
#    these weights) and compare the loss curves for `relu4_2` at the same number of
#    evaluations.
# 4. Add a small total-variation term (`scratchnst.method.costs.tv_cost`) to the `relu5_1`
#    reconstruction. What does it do to the high-frequency noise the deep layers leave?
# 5. Use two content layers at once, `relu2_1` and `relu4_2`, by passing both gradients
#    to one `net.backward` call. How does the balance between their constants show in
#    the result?
