# %% [markdown]
# # 04 · The style matrix (Gram) and the style cost, over several layers
#
# Tutorial 03 matched a photo's activations exactly, position by position. Style is
# different: a painting's brush strokes, colours and textures should appear
# *everywhere* in the result, not at the places where they were in the painting.
# Gatys et al. capture this with the Gram matrix of a layer's activations: which
# features occur together, summed over all positions. This notebook builds it, shows
# what it keeps and what it throws away, derives the gradient of the style cost, checks
# it, and then synthesises textures from noise using more and more layers (the "style"
# rows of Gatys' Figure 1).
#
# **What you will do**
#
# * compute Gram matrices $G = F F^\top$ of VGG19 activations, and check that shuffling
#   the positions of $F$ leaves $G$ unchanged;
# * derive the gradient of the per-layer style cost (Gatys et al. 2016, eq. 4–6), see
#   how the ReLU's backward applies the "$F_{ij} > 0$" condition, and check
#   `scratchnst.method.costs.gram_backward` and `scratchnst.method.costs.style_layer_cost` against
#   finite differences;
# * sum the cost over layers, compare the constants different sources use
#   (`scratchnst.method.presets.PRESETS`, `scratchnst.explain`), and synthesise textures from
#   `relu1_1` alone up to `relu1_1` … `relu5_1`;
# * write `gram_backward` and `style_layer_cost` yourself, and check them (exercise 0).
#
# **What you will learn**: why a Gram matrix describes texture but not layout; why its
# backward pass has a $G + G^\top$ in it; how deeper layers make textures with larger
# structures.
#
# **What you need**: tutorials 02 and 03 (03 opens with a table from the Deep Learning
# Specialization's notation to this one: its style matrix $G^{[l](S)}$ is our $A^l$, its
# $G^{[l](G)}$ our $G^l$, its $\lambda^{[l]}$ our $w_l$), and open beside you
# [`scratchnst/method/costs.py`](../scratchnst/method/costs.py) (`gram`, `gram_backward`,
# `style_layer_cost`, `style_cost`),
# [`scratchnst/method/presets.py`](../scratchnst/method/presets.py) (`PRESETS`, `explain`) and
# [`scratchnst/network/vgg.py`](../scratchnst/network/vgg.py). A few minutes of CPU at full size;
# under a minute with `SCRATCHNST_TUTORIAL_SIZE=small`.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchnst
from scratchnst.files.images import bundled_image, load_image
from scratchnst.inside.synthesis import noise_image
from scratchnst.method.costs import gram, gram_backward, style_cost, style_layer_cost
from scratchnst.method.presets import PRESETS
from scratchnst.network import gradcheck, layers

SIZE = os.environ.get("SCRATCHNST_TUTORIAL_SIZE", "full")
SIDE = 96 if SIZE == "full" else 40  # long side of the style image (and the textures), in pixels
ITERS = 60 if SIZE == "full" else 3  # L-BFGS iterations per texture
CHECK_SIDE = 40 if SIZE == "full" else 32  # the float64 whole-network check

plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "figure.dpi": 100})
np.set_printoptions(precision=4, suppress=True, linewidth=110)
rng = np.random.default_rng(0)
print(f"size: {SIZE}  (style image {SIDE} px, {ITERS} L-BFGS iterations per texture)")

# %% [markdown]
# ## 1. The Gram matrix
#
# As in tutorial 03, the activation of layer $l$, shaped $(N_l, h, w)$, is read as a
# matrix $F^l \in \mathbb R^{N_l \times M_l}$ with one row per filter and one column per
# position, $M_l = h\,w$. The Gram matrix (Gatys et al. eq. 3) is
#
# $$G^l = F^l {F^l}^\top \in \mathbb R^{N_l \times N_l}, \qquad
#   G^l_{ij} = \sum_{k=1}^{M_l} F^l_{ik} F^l_{jk}.$$
#
# $G_{ij}$ is large when filters $i$ and $j$ are active *at the same positions*: an
# (uncentred) correlation between two features, summed over the whole image. The
# diagonal $G_{ii} = \sum_k F_{ik}^2$ is how much feature $i$ occurs at all. The matrix
# is symmetric, and its size depends on the number of channels only, not on the image
# size. `scratchnst.method.costs.gram(F)` is one line, `F @ F.T`.

# %%
net = scratchnst.load_vgg19()  # float32
style_rgb = load_image(bundled_image("starry_night"), long_side=SIDE)  # uint8 (H, W, 3)
style = net.preprocess(style_rgb)  # (3, H, W)
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
acts = {n: a.copy() for n, a in net.forward(style, STYLE_LAYERS).items()}
print(f"style image {style_rgb.shape[:2]}")
for n, a in acts.items():
    N, h, w = a.shape
    print(f"{n}: activation ({N}, {h}, {w}) -> F is {N} x {h * w} (N_l x M_l) -> G is {N} x {N}")

# %% [markdown]
# ## 2. What the Gram keeps, and what it forgets
#
# Every position $k$ contributes one term $F_{ik} F_{jk}$ to the sum, and a sum does not
# care about the order of its terms. So if we shuffle the columns of $F$, that is, move
# every position's feature vector somewhere else in the image, the Gram matrix stays
# exactly the same (up to the rounding of a reordered float sum):
#
# $$\big(F\Pi\big)\big(F\Pi\big)^\top = F\,\Pi\Pi^\top F^\top = F F^\top
#   \quad\text{for any permutation matrix } \Pi .$$
#
# The Gram keeps *which features occur, and which occur together*; it forgets *where*.
# That is why it describes a texture or a painter's style, and why it cannot hold
# the arrangement of a scene. Below: one channel of `relu2_1` before and after the
# shuffle, and the top-left $24 \times 24$ corner of the two Gram matrices.

# %%
layer = "relu2_1"
a = acts[layer]  # (N, h, w)
N, h, w = a.shape
F = a.reshape(N, h * w)  # (N_l, M_l)
perm = rng.permutation(h * w)
F_shuffled = F[:, perm]  # every position's feature vector moved somewhere else
G, G_shuffled = gram(F), gram(F_shuffled)
print(f"max |G - G_shuffled| / max |G| = {np.abs(G - G_shuffled).max() / np.abs(G).max():.1e}  (float32 rounding)")

channel = int(np.argmax(G.diagonal()))  # the most active channel, for display
fig, axes = plt.subplots(1, 5, figsize=(17, 3.9), layout="constrained",
                         gridspec_kw={"width_ratios": [1.4, 1.4, 1.4, 1, 1]})
axes[0].imshow(style_rgb)
axes[0].set_title("style image")
axes[1].imshow(F[channel].reshape(h, w), cmap="magma")
axes[1].set_title(f"{layer}, channel {channel}")
axes[2].imshow(F_shuffled[channel].reshape(h, w), cmap="magma")
axes[2].set_title("same channel, positions shuffled")
vmax = np.abs(G[:24, :24]).max()
for ax, M_, title in [(axes[3], G, "Gram of F"), (axes[4], G_shuffled, "Gram of shuffled F")]:
    im = ax.imshow(M_[:24, :24], cmap="viridis", vmin=0, vmax=vmax)
    ax.set_title(title + "\n(channels 0-23)")
    ax.set_xlabel("channel j")
axes[3].set_ylabel("channel i")
for ax in axes[:3]:
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes[3:], shrink=0.8, label="$G_{ij}$")
plt.show()

# %% [markdown]
# The two feature maps look nothing alike; the two Gram matrices are the same.
#
# ## 3. The style cost of one layer, and its gradient
#
# Let $A^l$ be the Gram matrix of the style image and $G^l$ that of the image being
# generated. Gatys et al. (eq. 4) compare them with a normalised sum of squares:
#
# $$E_l = \frac{1}{4 N_l^2 M_l^2}\sum_{i,j}\big(G^l_{ij} - A^l_{ij}\big)^2 .$$
#
# This is also the course's $J^{[l]}_\text{style}$: its $\frac{1}{(2 n_H n_W n_C)^2}$ is
# $\frac{1}{4 N_l^2 M_l^2}$. The $M_l^2$ removes the dependence on the image size ($G$ is a sum
# of $M_l$ products), and the $N_l^2$ averages over the $N_l^2$ entries; neither makes the
# layers' costs *equal* (section 4). The gradient takes two steps of the chain
# rule. First, with respect to $G$:
#
# $$\frac{\partial E_l}{\partial G_{ij}} = \frac{1}{2 N_l^2 M_l^2}\big(G_{ij} - A_{ij}\big)
#   \;=:\; dG_{ij}.$$
#
# Second, through $G = F F^\top$. Entry $F_{pq}$ appears in row $p$ and in column $p$ of
# $G$: $\partial G_{ij} / \partial F_{pq} = [i = p]\,F_{jq} + [j = p]\,F_{iq}$. Summing,
#
# $$\frac{\partial E_l}{\partial F_{pq}} = \sum_{i,j} dG_{ij}\,
#   \frac{\partial G_{ij}}{\partial F_{pq}}
#   = \sum_j dG_{pj} F_{jq} + \sum_i dG_{ip} F_{iq}
#   = \big((dG + dG^\top) F\big)_{pq}.$$
#
# That is `scratchnst.method.costs.gram_backward(dG, F)`. Here $dG$ is symmetric, so it is
# $2\,dG\,F$, and together:
#
# $$\frac{\partial E_l}{\partial F^l} = \frac{1}{N_l^2 M_l^2}\big(G^l - A^l\big) F^l
#   = \frac{1}{N_l^2 M_l^2}\Big({F^l}^\top\big(G^l - A^l\big)\Big)^\top ,$$
#
# which is Gatys' eq. 6 (the two forms agree because $G - A$ is symmetric). As for the
# content cost, Gatys adds "if $F^l_{ij} > 0$, else 0": the gradient with respect to the
# input of the ReLU that produced $F$. In scratchnst,
# `scratchnst.method.costs.style_layer_cost(a, A, k)` returns $E_l$ (with $k = 1/(4N_l^2M_l^2)$,
# times a layer weight) and $\partial E_l/\partial F$, and `scratchnst.network.layers.relu_backward`,
# inside `net.backward`, applies the mask.
#
# ### Checking it
#
# First `gram_backward` on its own, with a random, **non-symmetric** upstream
# gradient $dG$. The popular shortcut $2\,dG\,F$ is right only when $dG$ is symmetric,
# and the checker catches it when it is not. Then `style_layer_cost`, entry by entry.

# %%
F64 = rng.standard_normal((6, 20))  # (N_l=6, M_l=20), float64
dG = rng.standard_normal((6, 6))  # not symmetric
dF = gram_backward(dG, F64)
print(f"gram_backward:         relative error {gradcheck.check_vjp(gram, F64, dG, dF):.1e}")
print(f"2 dG F (wrong here):   relative error {gradcheck.check_vjp(gram, F64, dG, 2 * dG @ F64):.2f}  <- caught")

a64 = rng.standard_normal((6, 4, 5))  # an "activation" (N=6, h=4, w=5)
A64 = gram(rng.standard_normal((6, 20)))  # a target Gram
k = PRESETS["gatys"].style_k(6, 20)  # 1 / (4 N^2 M^2)
J, da = style_layer_cost(a64, A64, k)
num = gradcheck.numerical_grad(lambda z: style_layer_cost(z, A64, k, grad=False)[0], a64)
print(f"style_layer_cost:      relative error {gradcheck.rel_error(da, num):.1e}")

# %% [markdown]
# Now eq. 6 exactly as printed, mask included, against what scratchnst computes one
# step below a real ReLU layer (`relu2_1` of the style image, against a target Gram
# taken from noise):

# %%
F2 = acts["relu2_1"]  # (N, h, w), the output of a ReLU
N, M = F2.shape[0], F2.shape[1] * F2.shape[2]
A_noise = gram(net.forward(noise_image(net, style.shape[1:], seed=1), ["relu2_1"])["relu2_1"].reshape(N, M))
G2 = gram(F2.reshape(N, M))
_, dF2 = style_layer_cost(F2, A_noise, PRESETS["gatys"].style_k(N, M))
ours = layers.relu_backward(dF2, F2)  # what net.backward does next
F2m = F2.reshape(N, M)
eq6 = np.where(F2m > 0, (F2m.T @ (G2 - A_noise)).T / (N**2 * M**2), 0.0).reshape(F2.shape)
print(f"relu_backward(dE/dF) vs Gatys eq. 6: relative error {gradcheck.rel_error(ours, eq6):.1e}  (float32);"
      f" {np.mean(F2 <= 0):.0%} of the entries are masked")

# %% [markdown]
# ## 4. Several layers: the style loss
#
# One layer's Gram describes texture at one scale: a unit of `relu1_1` sees 3×3
# pixels, one of `relu5_1` more than 200×200. Gatys et al. (eq. 5) sum over layers
# with weights $w_l$:
#
# $$\mathcal L_{\text{style}}(\vec a, \vec x) = \sum_{l} w_l E_l,$$
#
# with $w_l = 1/5$ for each of `relu1_1`, `relu2_1`, `relu3_1`, `relu4_1`, `relu5_1`
# and 0 for every other layer.
#
# Each $E_l$ depends only on its own layer's activations, so the gradient is a dict of
# per-layer gradients, and one backward pass handles all of them at once: `net.backward`
# adds each layer's gradient as it walks past that layer (the chain rule is linear in the
# upstream gradients). `scratchnst.method.costs.style_cost(acts, targets, ks)` computes the sum
# and the dict; `scratchnst.Objective` adds the content cost of tutorial 03:
# $\mathcal L = \alpha\,\mathcal L_{\text{content}} + \beta\,\mathcal L_{\text{style}}$.
#
# Where published implementations differ is the constant in front of each layer's
# $\sum (G - A)^2$. `scratchnst.method.presets.PRESETS` holds four of them, and
# `scratchnst.explain(preset, layer_shapes)` prints the constant each one effectively
# applies, $K_l = \beta\, w_l\, k_l$, for our image's layer shapes:

# %%
shapes = {n: a.shape for n, a in net.forward(style, STYLE_LAYERS + ["relu4_2"]).items()}
print("presets:", ", ".join(PRESETS))
for name in ("gatys", "course"):
    scratchnst.explain(name, shapes)
    print()
K = {n: PRESETS["gatys"].style_k(c, h * w) for n, (c, h, w) in shapes.items()}
print(f"gatys constants 1/(4 N^2 M^2): relu5_1 / relu1_1 = {K['relu5_1'] / K['relu1_1']:.1e}")

# %% [markdown]
# The constants grow by orders of magnitude from `relu1_1` to `relu5_1` (the last line prints
# the ratio): a shallow layer's Gram is a sum over many more positions $M_l$, and the $1/M_l^2$
# removes that dependence on the image size. It does **not** give every layer an equal say.
# What is left depends on how large each layer's activations are, and with VGG19's ImageNet
# weights those differ by orders of magnitude from layer to layer: tutorial 05 measures each
# layer's share of the style loss and finds one layer, `relu4_1`, carrying nearly all of it.
# The textures below show it too: the rows that include `relu4_1` are dominated by its
# structures, and adding `relu5_1` changes little. Gatys et al. avoid this by *normalising* the
# network (rescaling its weights so each layer's mean activation over images is 1), which
# tutorial 05 shows. Swapping one preset for another mostly changes how the style loss is
# balanced against the content loss, which is why each source comes with its own $\alpha$ and $\beta$.
#
# Before using it, check the whole multi-layer style loss through VGG19 in float64 with one
# directional derivative:

# %%
net64 = scratchnst.load_vgg19(dtype="float64")
s64 = net64.preprocess(load_image(bundled_image("starry_night"), long_side=CHECK_SIDE))
x64 = s64 + 20 * rng.standard_normal(s64.shape)  # some other image
t_acts = net64.forward(s64, STYLE_LAYERS)
A = {n: gram(a.reshape(a.shape[0], -1)) for n, a in t_acts.items()}
ks = {n: PRESETS["gatys"].style_k(a.shape[0], a.shape[1] * a.shape[2]) / len(STYLE_LAYERS) for n, a in t_acts.items()}


def style_loss64(z):
    return style_cost(net64.forward(z, STYLE_LAYERS), A, ks, grad=False)[0]


J, das = style_cost(net64.forward(x64, STYLE_LAYERS), A, ks)
dx = net64.backward(das)  # one backward for all five layers
err, analytic, numeric = gradcheck.check_directional(style_loss64, x64, dx, seed=0, h=1e-5)
print(f"style loss through VGG19: <grad, v> = {analytic:.10e}, finite difference = {numeric:.10e},"
      f" relative error {err:.1e}")

# %% [markdown]
# ## 5. Texture synthesis: Gatys' Figure 1, style rows
#
# With the style cost alone, starting from noise, L-BFGS produces an image with the
# painting's Gram matrices but no reason to put anything where the painting had it: a
# texture. Gatys' Figure 1 does this with the style represented by `relu1_1` only, then
# `relu1_1` and `relu2_1`, and so on up to all five layers. We do the same, with Gatys'
# constants ($w_l = 1/L$ over the $L$ layers used). The textures have the size of the
# style image, so its Grams $A^l$ are the targets as they are.

# %%
x0 = noise_image(net, style.shape[1:], seed=0)  # the same start for every row


def texture(style_layers, iters):
    t_acts = net.forward(style, style_layers)
    A = {n: gram(a.reshape(a.shape[0], -1)) for n, a in t_acts.items()}  # (N_l, N_l) targets
    L = len(style_layers)
    ks = {n: PRESETS["gatys"].style_k(a.shape[0], a.shape[1] * a.shape[2]) / L for n, a in t_acts.items()}

    def fun(x):
        J, das = style_cost(net.forward(x, style_layers), A, ks)
        return J, net.backward(das)  # (3, H, W)

    history = []
    res = scratchnst.minimize(fun, x0, method="lbfgs", max_iter=iters,
                              callback=lambda opt: history.append(opt.f))
    return res, [float(fun(x0)[0])] + history


textures = {}
for depth in range(1, len(STYLE_LAYERS) + 1):
    used = STYLE_LAYERS[:depth]
    t0 = time.perf_counter()
    res, history = texture(used, ITERS)
    textures[used[-1]] = (res, history)
    print(f"up to {used[-1]}: loss {history[0]:.3e} -> {history[-1]:.3e}  "
          f"({res.n_iter} iterations, {res.n_evals} evaluations, {time.perf_counter() - t0:.0f} s)")

# %%
labels = {"relu1_1": "relu1_1"} | {n: f"relu1_1 … {n}" for n in STYLE_LAYERS[1:]}
fig, axes = plt.subplots(2, 3, figsize=(13, 6.2), layout="constrained")
panels = [("style image", style_rgb)] + [
    (labels[n], net.deprocess(res.x)) for n, (res, _) in textures.items()  # uint8 RGB
]
for ax, (title, img) in zip(axes.flat, panels):
    ax.imshow(img)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"Textures from noise matching the Gram matrices of the layers named, {ITERS} L-BFGS iterations",
             fontsize=13)
plt.show()

# %% [markdown]
# **What the figure shows.** With `relu1_1` alone the result is soft patches of the
# painting's colours (its blues, yellows and near-black) with no structure: those units
# see 3×3 pixels, so their correlations pin down the colours and the finest grain of
# the painting and nothing larger. Each added layer sees further, and the structures
# grow: short curved strokes with `relu2_1`, the painting's swirls with `relu3_1`, and
# with `relu4_1` and `relu5_1` larger swirls mixed with some false colours (pinks and
# greens). Those two are also the least finished: their loss is still falling at the
# last iteration (next figure). At no depth does the picture come back: the village,
# the cypress and the moon are gone, because the Gram matrices have no notion of where
# anything was (section 2). This is the style half of style transfer; the content
# cost of tutorial 03 will put the layout back.
#
# The loss curves, relative to each run's start:

# %%
fig, ax = plt.subplots(figsize=(9, 4.2))
for n, (_, history) in textures.items():
    ax.semilogy(np.array(history) / history[0], lw=2, label=labels[n])
ax.set_xlabel("L-BFGS iteration")
ax.set_ylabel("style loss / initial loss")
ax.set_title("Texture synthesis: loss per iteration")
ax.xaxis.get_major_locator().set_params(integer=True)
ax.grid(True, which="both", alpha=0.3)
ax.legend(title="style layers", loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# * The Gram matrix $G = FF^\top$ ($N_l \times N_l$) sums products of features over all
#   $M_l$ positions: it keeps which features occur together and forgets where. Shuffling
#   positions leaves it unchanged.
# * The per-layer style cost $E_l = \frac{1}{4N_l^2M_l^2}\sum (G - A)^2$ has gradient
#   $\frac{1}{N_l^2M_l^2}(G - A)F$ (Gatys eq. 6), via
#   $\partial/\partial F = (dG + dG^\top)F$ through the Gram; the "$F > 0$" condition is
#   the ReLU's backward pass.
# * The style loss is a weighted sum over layers; one `net.backward` call takes every
#   layer's gradient at once. Sources differ in the constants (`scratchnst.method.presets.PRESETS`,
#   `scratchnst.explain`).
# * Textures synthesised from more layers have larger structures; none of them keeps the
#   painting's layout.
#
# ## Exercises
#
# **0. Write it yourself: `gram_backward` and `style_layer_cost`.** Fill in the two functions
# below from their docstrings (section 3 has the derivation), then run the check cell: it checks
# `gram_backward` with a *non-symmetric* $dG$ against central differences (`gradcheck.check_vjp`),
# and `style_layer_cost`'s value against the formula and its gradient against
# `gradcheck.numerical_grad`. Answers are in `tutorials/solutions.py`.

# %%
from exercises import check_exercise  # tutorials/exercises.py  # noqa: E402


def my_gram_backward(dG, F):
    """Backward pass of G = F F^T.

    Parameters
    ----------
    dG : ndarray (N, N), dL/dG; not necessarily symmetric
    F : ndarray (N, M), the features

    Returns
    -------
    dF : ndarray (N, M), dL/dF
    """
    raise NotImplementedError  # your code here: one line


def my_style_layer_cost(a, A, k):
    """One layer's style cost J = k * sum((G - A)^2), G = F F^T with F = a.reshape(N, h * w), and its gradient.

    Parameters
    ----------
    a : ndarray (N, h, w), the generated image's activation
    A : ndarray (N, N), the style image's Gram matrix (the target)
    k : float, e.g. 1 / (4 N^2 M^2)

    Returns
    -------
    J : float
    da : ndarray (N, h, w), dJ/da
    """
    raise NotImplementedError  # your code here: four lines or so


# %%
check_exercise("gram_backward", my_gram_backward)
check_exercise("style_layer_cost", my_style_layer_cost)

# %% [markdown]
# 1. Subtract the mean of each channel before the Gram (a covariance instead of an
#    uncentred correlation). Derive the new gradient and check it with
#    `scratchnst.network.gradcheck.numerical_grad`. Does the texture change?
# 2. Synthesise a texture twice the size of the style image. What must happen to the target
#    Grams $A^l$ so that the cost still compares like with like? (Compare with how
#    `scratchnst.Objective` builds its targets.)
# 3. Use `relu5_1` *alone*. What survives of the painting when only the deepest layer
#    is matched?
# 4. Give the five layers unequal weights $w_l$, e.g. only `relu3_1` and `relu4_1`
#    non-zero. Which weights give the most painting-like strokes?
# 5. Repeat the texture synthesis with `scratchnst.load_vgg19(pooling="avg")`, as Gatys
#    et al. suggest. Do the textures look different?
