# %% [markdown]
# # 05 · Generating the image: the objective and its optimisers
#
# The earlier tutorials built VGG19 with a backward pass and the content and style
# costs. Here we put them together into one number to minimise and then minimise it:
# the image itself is the variable, and the network stays fixed.
#
# **What you will do**
#
# * write neural style transfer **on one page**, from the layers of tutorial 02 alone
#   (forward, Gram, costs, backward, an optimiser loop), then let the package's
#   `Objective` and `stylize` do the same thing faster;
# * write down the total loss $J = \alpha J_\text{content} + \beta J_\text{style}$ (+ TV),
#   derive its gradient, and check that gradient with a finite difference;
# * minimise it with **Adam** and with **L-BFGS** on the same problem and compare their
#   loss curves per iteration, per loss evaluation and per second;
# * follow **the course's recipe**: start from random noise and watch the image converge,
#   with plain gradient descent, Adam and L-BFGS side by side; then run the recipe that brings
#   the photo back from noise (coarse to fine, average pooling) against a start from the photo;
# * measure each style layer's **share of the loss**, before and after Gatys' normalisation
#   of the network;
# * sweep the style layers against the content/style ratio $\alpha/\beta$ (Gatys' Figure 3),
#   compare content layers and the two kinds of pooling;
# * try colour preservation and coarse-to-fine (multi-scale) optimisation, briefly;
# * look at a gallery of **failures**, and at what feed-forward style transfer changes;
# * write the L-BFGS two-loop recursion yourself (exercise 0).
#
# **What you will learn**: how one forward and one backward pass give the gradient of
# every term at once; how the two-loop recursion turns ten stored steps into a
# quasi-Newton direction; what the *Wolfe* line search guarantees; why the starting image,
# the weights and the balance between layers matter.
#
# **What you need**: tutorials 03 and 04 (the costs and their gradients), NumPy,
# matplotlib. Open these beside the notebook:
#
# * `scratchnst/method/objective.py` — `Objective` (the loss and its gradient);
# * `scratchnst/method/costs.py` — `content_cost`, `style_layer_cost`, `gram`, `tv_cost`;
#   `scratchnst/method/presets.py` — `PRESETS`;
# * `scratchnst/method/adam.py` — `Adam`, `AdamLoop`; `scratchnst/method/line_search.py` — `strong_wolfe`;
#   `scratchnst/method/lbfgs.py` — `LBFGS`; `scratchnst/method/optimize.py` — `minimize`;
# * `scratchnst/transfer/settings.py` — `Settings`; `scratchnst/transfer/loop.py` — `stylize`;
#   `scratchnst/transfer/levels.py` — `initial_image`, `scale_sizes`, `upsample`;
# * `scratchnst/method/color.py` — colour preservation.
#
# Everything runs on the CPU. The first cell picks the image size and iteration
# counts: `SCRATCHNST_TUTORIAL_SIZE=small` (what CI uses) runs in well under a minute
# at 32 px; the default `full` uses 96 px for most sections and 256 px for the course's
# recipe, and takes several minutes (section 3c, the recipe run to the end, is the longest).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchnst
from scratchnst import Settings, stylize
from scratchnst.files import images
from scratchnst.method.line_search import cubic_min
from scratchnst.network import layers
from scratchnst.network.gradcheck import check_directional, rel_error
from scratchnst.transfer.levels import initial_image, scale_sizes
from scratchnst.transfer.speckle import speckle

SIZE = os.environ.get("SCRATCHNST_TUTORIAL_SIZE", "full")
if SIZE == "small":
    PX, ITERS_LONG, ITERS = 32, 3, 1     # CI: seconds
    NOISE_PX, NOISE_ITERS, SNAP_EVERY = 32, 4, 2
    RECIPE_PX, RECIPE_ITERS, REF_ITERS = 128, 1, 1       # 128 px: still two levels (64, 128)
    GRID_PX, GRID_ITERS, GRID_DEPTHS, GRID_RATIOS = 32, 1, (1, 5), (1e-7,)
    RATIOS, CONTENT_LAYERS = [1e-5, 2e-8], ("relu2_2",)   # each stylize() run costs seconds even here
else:
    PX, ITERS_LONG, ITERS = 96, 50, 30   # legible results in a few minutes on a laptop CPU
    NOISE_PX, NOISE_ITERS, SNAP_EVERY = 256, 30, 6      # ~0.9 s per evaluation at 256 px on a 2-core laptop
    RECIPE_PX, RECIPE_ITERS, REF_ITERS = NOISE_PX, 200, 100   # section 3c: 200 a level from noise, 100 from the photo
    GRID_PX, GRID_ITERS, GRID_DEPTHS, GRID_RATIOS = 64, 30, (1, 3, 5), (1e-5, 1e-6, 1e-7, 1e-8)
    RATIOS, CONTENT_LAYERS = [1e-5, 1e-6, 1e-7, 2e-8, 1e-9], ("relu2_2", "relu4_2", "relu5_2")

# Gatys et al.'s normalised VGG19 (weights rescaled so that each layer's mean activation over
# images is 1). Older versions of the package do not have it: then the sections that use it
# say so, and run on the plain weights.
try:
    net_normalized = scratchnst.load_vgg19(normalized=True)
except TypeError:
    net_normalized = None
NORMALIZED = net_normalized is not None
PLAIN = {"normalized": False} if NORMALIZED else {}   # Settings for the plain network, where there is a choice

plt.rcParams.update({"font.size": 11, "axes.titlesize": 11, "figure.dpi": 100})
print(f"size={SIZE}: {PX} px, {ITERS_LONG} iterations for the optimiser comparison, {ITERS} for the sweeps; "
      f"noise start at {NOISE_PX} px; normalised VGG19 available: {NORMALIZED}")

# %% [markdown]
# ## 0. Neural style transfer on one page
#
# Before the package's machinery, the whole method with nothing but the layers of tutorial 02
# (`scratchnst.network.layers`): a forward pass that keeps each layer's cache, a backward pass
# that walks the caches in reverse, the Gram matrix, the two costs of tutorials 03 and 04 and
# their gradients, and an optimiser loop (Adam, section 2). Only the weights come from the package
# (`net.params`: `{conv name: (kernel (O, C, 3, 3), bias (O,))}`), and the layer names from
# `scratchnst.LAYERS`. The constants are Gatys et al.'s, as in the `gatys` preset.

# %%
net = scratchnst.load_vgg19(dtype="float32")
content_rgb = images.load_image(images.bundled_image("astronaut"), long_side=PX)      # (H, W, 3) uint8
style_rgb = images.load_image(images.bundled_image("starry_night"), long_side=PX)
content = net.preprocess(content_rgb)                                                # (3, H, W) float32
style = net.preprocess(style_rgb)
CONTENT, STYLE = "relu4_2", ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def vgg(x, upto="relu5_1"):
    """Forward pass with tutorial 02's ops: {layer: activation (C, h, w)} and the caches to undo it."""
    acts, tape = {}, []
    for name in scratchnst.LAYERS[: scratchnst.LAYERS.index(upto) + 1]:
        if name.startswith("conv"):
            x, cache = layers.conv2d_forward(x, *net.params[name], pad=1)
            tape.append((name, layers.conv2d_backward_input, cache))
        elif name.startswith("relu"):
            x, cache = layers.relu_forward(x)
            tape.append((name, layers.relu_backward, cache))
        else:
            x, cache = layers.max_pool_forward(x, 2)
            tape.append((name, layers.max_pool_backward, cache))
        acts[name] = x
    return acts, tape


def vgg_backward(grads, tape):
    """dL/dx from {layer: dL/d activation}: walk the tape in reverse, adding each layer's own gradient."""
    d = 0
    for name, backward, cache in reversed(tape):
        d = backward(d + grads.get(name, 0), cache)
    return d


def per_position_gram(a):
    F = a.reshape(a.shape[0], -1)                         # (N_l, M_l)
    return F @ F.T / F.shape[1]                           # (N_l, N_l), per position: images of any size compare


P = vgg(content)[0][CONTENT].copy()                        # content target P
A_pp = {l: per_position_gram(a) for l, a in vgg(style)[0].items() if l in STYLE}


def J_and_grad(x, alpha=1.0, beta=1e3):
    acts, tape = vgg(x)
    J = alpha * 0.5 * np.sum((acts[CONTENT] - P) ** 2)     # Gatys eq. 1
    grads = {CONTENT: alpha * (acts[CONTENT] - P)}
    for l in STYLE:
        F = acts[l].reshape(acts[l].shape[0], -1)          # (N, M)
        N, M = F.shape
        R = F @ F.T - A_pp[l] * M                          # G - A, in the units of gram(F)
        J += beta / len(STYLE) * np.sum(R**2) / (4 * N**2 * M**2)                           # eq. 4, 5
        grads[l] = beta / len(STYLE) * (R @ F).reshape(acts[l].shape) / (N**2 * M**2)      # eq. 6
    return float(J), vgg_backward(grads, tape)


x, m, v = content.copy(), 0, 0                            # Adam from the content photo (section 2)
for t in range(1, ITERS + 1):
    J, g = J_and_grad(x)
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
    x = x - 10.0 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
print(f"one page: {ITERS} Adam iterations from the content photo, J = {J_and_grad(x)[0]:.4g}")

# %% [markdown]
# That is the method: everything else in the package is speed, checks and conveniences. The
# package's `scratchnst.Objective` computes the same loss (its targets are built the same way,
# Gram per position times the generated image's $M_l$) with faster convolutions (Winograd's,
# `scratchnst/network/fast/`), and `scratchnst.stylize` runs the whole loop from a `Settings`. The
# next cell compares the two losses and gradients at the same image, and times the same Adam run
# through `stylize`:

# %%
obj = scratchnst.Objective(net, content, style, alpha=1.0, beta=1e3, normalization="gatys")
J_pkg, g_pkg = obj.value_and_grad(x)
J_page, g_page = J_and_grad(x)
print(f"one page vs Objective: loss relative difference {abs(J_page - J_pkg) / J_pkg:.1e}, "
      f"gradient relative error {rel_error(g_page, g_pkg):.1e}")
seconds = {}
for label, f in [("one page", J_and_grad), ("Objective", obj.value_and_grad)]:
    f(x)                                                  # warm-up: the fast convolutions prepare their kernels
    t0 = time.perf_counter()
    for _ in range(3):
        f(x)
    seconds[label] = (time.perf_counter() - t0) / 3
print(f"one evaluation (forward + backward): one page {seconds['one page'] * 1e3:.0f} ms, "
      f"Objective {seconds['Objective'] * 1e3:.0f} ms; speed-up {seconds['one page'] / seconds['Objective']:.1f}x")
pkg = stylize(Settings(content="astronaut", styles=["starry_night"], size=PX, iterations=ITERS,
                       optimizer="adam", lr=10.0, alpha=1.0, beta=1e3, preset="gatys", **PLAIN))
print(f"stylize: {ITERS} Adam iterations from the content photo, J = {pkg.loss:.4g}")

# %% [markdown]
# The two agree to float32 rounding (the relative differences printed above). The speed-up per
# evaluation (printed) comes from the fast convolutions; it grows with the image size, since at
# small sizes Python overheads dominate. `stylize` starts from the content photo too and takes
# the same Adam steps on the same (plain) network, so its final loss is close to the one-page
# loop's, though not equal: float32 roundings add up in their own order, and Adam's steps carry
# small differences forward. (For the `gatys` preset, `stylize` runs Gatys' normalised VGG19 by
# default where this version has it, section 1b; `normalized=False` asks for the plain one.)
#
# ## 1. The objective
#
# Write $F^l(x) \in \mathbb{R}^{N_l \times M_l}$ for the activations of layer $l$ for
# image $x$ ($N_l$ channels, $M_l = h_l w_l$ positions), $P^l = F^l(p)$ for the content
# photo $p$ and $A^l = F^l(a) F^l(a)^\top$ for the Gram matrix of the style image $a$.
# Gatys et al. (2016) minimise
#
# $$
# J(x) = \alpha \underbrace{\tfrac12 \sum_{i,j} \big(F^{c}_{ij}(x) - P^{c}_{ij}\big)^2}_{
#          J_\text{content},\ c = \texttt{relu4\_2}}
#      + \beta \underbrace{\sum_{l} \frac{w_l}{4 N_l^2 M_l^2} \sum_{i,j} \big(G^l_{ij}(x) - A^l_{ij}\big)^2}_{
#          J_\text{style},\ l = \texttt{relu1\_1} \dots \texttt{relu5\_1}}
#      + \lambda_\text{TV} \, J_\text{TV}(x),
# \qquad G^l = F^l (F^l)^\top ,
# $$
#
# with $w_l = 1/5$ and, in the paper, $\alpha/\beta = 10^{-3}$ or $10^{-4}$. The optional
# total-variation term $J_\text{TV} = \sum (x_{c,i+1,j} - x_{c,i,j})^2 + \sum (x_{c,i,j+1} - x_{c,i,j})^2$
# penalises neighbouring-pixel differences (a smoothness prior; 0 by default).
#
# **The gradient.** Each term depends on $x$ only through one layer's activations, so
# by the chain rule
#
# $$
# \frac{\partial J}{\partial x}
#   = \sum_{l} \Big(\frac{\partial F^l}{\partial x}\Big)^{\!\top} \frac{\partial J}{\partial F^l}
# + \lambda_\text{TV}\frac{\partial J_\text{TV}}{\partial x},
# \qquad
# \frac{\partial J_\text{content}}{\partial F^c} = F^c - P^c,
# \qquad
# \frac{\partial J_\text{style}}{\partial F^l} = \frac{w_l}{N_l^2 M_l^2}\,(G^l - A^l)\,F^l .
# $$
#
# (The last one: $\partial/\partial G$ of $\sum (G - A)^2$ is $2(G - A)$, and through
# $G = F F^\top$ a matrix $D$ becomes $(D + D^\top) F$; with the $\frac{1}{4 N^2 M^2}$ in front,
# $\frac{1}{4N^2M^2} \cdot 2 \cdot 2 (G - A) F$.)
#
# The products $(\partial F^l / \partial x)^\top v$ are exactly what VGG19's backward
# pass computes, and because they are **linear in $v$** we never need one backward pass
# per layer: we hand the backward pass every layer's $\partial J / \partial F^l$ at once,
# and it adds each one in as it walks down past that layer (`VGG19.backward` in
# `scratchnst/network/vgg.py`). One evaluation of $J$ and $\nabla J$ is therefore **one forward
# pass to `relu5_1` and one backward pass**, whatever the number of layers.
#
# That is all `scratchnst.method.objective.Objective` does (section 0 did it by hand): its
# constructor computes the targets $P^c$ and $A^l$ once; `Objective.value_and_grad(x)` runs
# the forward pass, calls `content_cost` and `style_layer_cost` from
# `scratchnst/method/costs.py` for each layer, scales them by $\alpha$ and $\beta$, and runs
# the one backward pass. The constants ($\frac12$, $\frac{1}{4N^2M^2}$, $w_l$) are those of
# the `gatys` preset; `scratchnst.method.presets.PRESETS` lists the others that published
# code uses.

# %%
loss, grad = obj.value_and_grad(content)
print(f"content {content.shape}, style {style.shape}; J(content image) = {loss:.4g}, grad {grad.shape} {grad.dtype}")
print("unweighted terms:", {k: f"{v:.3g}" for k, v in obj.terms.items() if k != "layers"})
style_terms = obj.terms["layers"]["style"]   # each layer's w_l k_l sum((G - A)^2), unweighted by beta
for name, J in style_terms.items():
    print(f"  style {name}: {J:.3g}   share {J / sum(style_terms.values()):.6f}")

# %% [markdown]
# At the content photo itself $J_\text{content} = 0$, and the whole loss is style.
# Notice how unequal the five style layers are (the shares printed above): one layer,
# `relu4_1`, carries nearly all of the style loss, and `relu1_1` a vanishing part of it.
# The $\frac{1}{4N^2M^2}$ constant does not equalise the layers (their activations differ in
# scale by orders of magnitude with these weights), so in practice the optimiser mostly
# matches the deepest layers' Grams. Section 1b measures this, and what Gatys' normalisation
# of the network does about it.
#
# **Check the gradient before trusting it.** A directional finite difference costs two
# extra loss evaluations: along a random direction $v$,
# $\frac{J(x + hv) - J(x - hv)}{2h} \approx \langle \nabla J(x), v\rangle$.
# In float32 the difference of two numbers of size $10^{13}$ is mostly rounding, so we
# check in float64 on a small copy of the problem (`scratchnst.network.gradcheck.check_directional`).
# The step $h$ must be small: ReLU and max pooling have kinks, and a step that carries some
# units across one makes the estimate wrong by $O(h)$. The cell prints the error for three
# steps: it falls as $h$ shrinks, until no unit crosses a kink.

# %%
net64 = scratchnst.load_vgg19(dtype="float64")
c64 = net64.preprocess(images.resize_long_side(content_rgb, 32))
s64 = net64.preprocess(images.resize_long_side(style_rgb, 32))
obj64 = scratchnst.Objective(net64, c64, s64, alpha=1.0, beta=1e3, tv_weight=1.0)
x64 = c64 + np.random.default_rng(0).normal(0, 5, c64.shape)   # away from the content image, where J_content = 0
_, g64 = obj64.value_and_grad(x64)
for h in (1e-3, 1e-4, 1e-5):
    err, analytic, numeric = check_directional(obj64.value, x64, g64, h=h)
    print(f"h={h:.0e}: <grad, v> = {analytic:.6e}   finite difference = {numeric:.6e}   relative error = {err:.1e}")
del net64, obj64

# %% [markdown]
# ### 1b. The balance between the style layers
#
# Each layer's share of the style loss, $w_l E_l / \sum_{l'} w_{l'} E_{l'}$, read from
# `obj.terms["layers"]["style"]` after an evaluation, at the content photo (where a run from
# the content starts). First with the plain ImageNet weights, then with Gatys et al.'s
# **normalised** VGG19 (`scratchnst.load_vgg19(normalized=True)`): the same network with each
# convolution's weights and bias rescaled so that every unit's mean activation over a set of
# images is 1. Because ReLU and max pooling commute with a positive scale, the rescaled
# network computes the same features up to a factor per channel, and the layers' Grams
# become numbers of comparable size.

# %%
def style_shares(objective, x):
    objective.value(x)
    terms = objective.terms["layers"]["style"]
    return {n: J / sum(terms.values()) for n, J in terms.items()}


shares = {"plain VGG19": style_shares(obj, content)}
if NORMALIZED:
    obj_n = scratchnst.Objective(net_normalized, net_normalized.preprocess(content_rgb),
                                 net_normalized.preprocess(style_rgb), alpha=1.0, beta=1e3, normalization="gatys")
    shares["normalised VGG19"] = style_shares(obj_n, net_normalized.preprocess(content_rgb))
else:
    print("load_vgg19(normalized=True) is not available in this version of scratchnst: only the plain weights")
for label, sh in shares.items():
    print(f"{label}: " + ", ".join(f"share {n} = {v:.2e}" for n, v in sh.items()))

fig, ax = plt.subplots(figsize=(9, 3.8), layout="constrained")
width = 0.8 / len(shares)
for k, (label, sh) in enumerate(shares.items()):
    ax.bar(np.arange(len(sh)) + k * width, list(sh.values()), width, label=label)
ax.set_xticks(np.arange(len(STYLE)) + 0.4 - width / 2, STYLE)
ax.set_yscale("log")
ax.set_ylabel("share of the style loss (log scale)")
ax.set_title("Each style layer's share of the style loss, at the content photo")
ax.grid(True, axis="y", which="both", alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# With the plain weights the shares span many orders of magnitude (the bars are on a log
# scale), and one deep layer takes nearly everything: the optimiser then matches that layer's
# Gram and hardly notices the others, whatever $w_l$ says. With the normalised network (when it
# is available: the legend says) the shares come within about an order of magnitude of each
# other, so every layer contributes, closer to what Gatys et al.'s equal $w_l = 1/5$ intends;
# they are still not equal (the printed shares say which layer is largest at this size).
# The normalisation changes the *balance*, not the features: a network whose layers are
# rescaled recognises exactly what it recognised before. (`scratchnst.method.balance.style_shares`
# measures these shares, and each layer's share of the gradient too, which is what the
# optimiser feels.)
#
# ## 2. Optimisers
#
# ### Gradient descent and Adam
#
# Plain gradient descent, $x_{t+1} = x_t - \eta\, g_t$ with $g_t = \nabla J(x_t)$, needs a
# step size $\eta$ in the units of $x$ per unit of gradient. Our gradients are of order
# $10^{8}$–$10^{10}$ and change by orders of magnitude during a run, so no fixed $\eta$ works
# for long. **Adam** (Kingma and Ba 2015) divides each coordinate's step by a running
# estimate of that coordinate's gradient magnitude:
#
# $$
# m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
# v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \qquad
# x_{t} = x_{t-1} - \eta\, \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}.
# $$
#
# The ratio is dimensionless, so $\eta$ is simply "about how many units each pixel
# moves per step" (here: pixel values, 0..255). The $1-\beta^t$ factors undo the bias of
# starting $m$ and $v$ at zero. One iteration = one evaluation of $J$ and $\nabla J$.
# Code: `scratchnst.method.adam.Adam.step` (the three lines above) and `AdamLoop`, which drives it
# with the same `start` / `step` / `state_dict` interface as L-BFGS. Section 0's loop is the same
# three lines.

# %% [markdown]
# ### L-BFGS
#
# Newton's method would step $d = -H g$ with $H = (\nabla^2 J)^{-1}$ — hopeless for an
# image of $3HW$ unknowns. BFGS builds an approximation of $H$ from observed steps: after
# a step $s_k = x_{k+1} - x_k$ with gradient change $y_k = g_{k+1} - g_k$, the new $H$ must
# satisfy the **secant condition** $H_{k+1} y_k = s_k$, and the closest such update is
#
# $$
# H_{k+1} = (I - \rho_k s_k y_k^\top)\, H_k\, (I - \rho_k y_k s_k^\top) + \rho_k s_k s_k^\top,
# \qquad \rho_k = \frac{1}{y_k^\top s_k}.
# $$
#
# *Limited-memory* BFGS never forms $H$: it keeps the last $m$ pairs $(s_i, y_i)$
# (`history_size=10`) and applies the unrolled product to $g$ with the **two-loop
# recursion** (Nocedal and Wright, algorithm 7.4), in $O(mn)$ time and memory:
#
# ```
# q = g
# for i = k-1 ... k-m:          # newest to oldest
#     a_i = rho_i * s_i.q ;  q = q - a_i * y_i
# r = gamma * q                  # H_0 = gamma I, gamma = s'y / y'y of the newest pair
# for i = k-m ... k-1:          # oldest to newest
#     b = rho_i * y_i.r ;  r = r + (a_i - b) * s_i
# d = -r                         # = -H g
# ```
#
# $\gamma = s^\top y / y^\top y$ is the inverse curvature along the last step, which gives
# $d$ the right length, so the step $t = 1$ is usually a good first guess. The two-loop
# recursion is exercise 0, with a check against the dense matrix $H$ built by the update above.

# %% [markdown]
# ### The line search
#
# Along $d$ we look for a step $t$ with $\phi(t) = J(x + t d)$ meeting
# the **strong Wolfe conditions**
#
# $$
# \phi(t) \le \phi(0) + c_1 t\, \phi'(0) \quad\text{(sufficient decrease)}, \qquad
# |\phi'(t)| \le c_2 |\phi'(0)| \quad\text{(curvature)},
# $$
#
# with $c_1 = 10^{-4}$, $c_2 = 0.9$. The first rules out steps that barely help; the second
# rules out steps that stop too early. With $s = t d$ and $\phi'(t) = \nabla J(x + td)^\top d$,
#
# $$ y^\top s = t\,\big(\phi'(t) - \phi'(0)\big) > 0 , $$
#
# because the curvature condition makes $\phi'(t) \ge c_2 \phi'(0) > \phi'(0)$ (recall
# $\phi'(0) < 0$). That keeps every $\rho_i$ positive and $H$ positive definite, so $d$ stays
# a descent direction. The *weak* Wolfe conditions (curvature without the absolute value)
# already guarantee this; the strong form also keeps the step from overshooting into a region
# where the slope is steeply positive, and is the usual choice (Nocedal and Wright; scipy;
# PyTorch's `strong_wolfe` option). L-BFGS does not strictly *need* it: PyTorch's L-BFGS runs
# with no line search by default, taking fixed steps and skipping pairs with $y^\top s \le 0$,
# which is what `LBFGS.step` does too when a pair is not clearly positive.
#
# The search first brackets an interval that contains such a $t$, then shrinks it (the *zoom*),
# each trial at the minimiser of the cubic through the two ends' values and slopes. Each trial
# costs an evaluation, so one L-BFGS iteration costs **one or more** evaluations.
#
# Code: in `scratchnst/method/lbfgs.py`, `LBFGS.direction` is the two-loop recursion line
# for line; in `scratchnst/method/line_search.py`, `strong_wolfe` is the line search and
# `cubic_min` the cubic step; `LBFGS.step` ties them together, stores a pair only when
# $s^\top y$ is clearly positive, and falls back to $-g$ if the direction ever fails.
# `cubic_min` is exact on a cubic, which the next cell checks on
# $\phi(t) = t^3 - 6t^2 + 9t$ (minimum at $t = 3$) from the values and slopes at $t = 0$ and $t = 4$:

# %%
phi = lambda t: t**3 - 6 * t**2 + 9 * t        # noqa: E731
dphi = lambda t: 3 * t**2 - 12 * t + 9        # noqa: E731
t_star = cubic_min(0.0, phi(0.0), dphi(0.0), 4.0, phi(4.0), dphi(4.0), 0.0, 4.0)
print(f"cubic_min on a cubic: t = {t_star:.6f} (exact minimiser 3)")

# %% [markdown]
# ### Running both
# `scratchnst.minimize(fun, x0, method="lbfgs" | "adam", max_iter=..., callback=...)`
# (`scratchnst/method/optimize.py`) runs either, calling `callback(opt)` after every iteration.

# %%
def run(fun, x0, method, iters, **options):
    """Minimise, recording after every iteration the loss, evaluations so far, seconds and weighted terms."""
    log = {"iter": [0], "evals": [1], "seconds": [0.0], "loss": [fun(x0)[0]], "content": [], "style": []}
    t0 = time.perf_counter()

    def callback(opt):
        log["iter"].append(opt.n_iter)
        log["evals"].append(opt.n_evals)
        log["seconds"].append(time.perf_counter() - t0)
        log["loss"].append(opt.f)
        # obj.terms belongs to the last evaluation: the accepted point, except when a
        # line search ends on a rejected trial (rare)
        log["content"].append(obj.alpha * obj.terms["content"])
        log["style"].append(obj.beta * obj.terms["style"])

    res = scratchnst.minimize(fun, x0, method=method, max_iter=iters, callback=callback, **options)
    return res, log


runs = {}
for label, method, options in [("Adam, lr=10", "adam", {"lr": 10.0}),
                               ("L-BFGS, m=10", "lbfgs", {"history_size": 10})]:
    res, log = run(obj.value_and_grad, content, method, ITERS_LONG, **options)
    runs[label] = (res, log)
    print(f"{label:13s}: {res.n_iter} iterations, {res.n_evals} evaluations, {log['seconds'][-1]:.1f} s, "
          f"final loss {res.f:.3g}")
(_, adam_log), (lbfgs_res, lbfgs_log) = runs["Adam, lr=10"], runs["L-BFGS, m=10"]
print(f"L-BFGS's first iteration: {lbfgs_log['evals'][1] - 1} evaluations; "
      f"iteration at which L-BFGS's loss is first below Adam's: "
      f"{next((i for i, (a, b) in enumerate(zip(adam_log['loss'], lbfgs_log['loss'])) if b < a and i > 0), None)}")
print(f"final loss L-BFGS / Adam: {lbfgs_res.f / runs['Adam, lr=10'][0].f:.2f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
for label, (_, log) in runs.items():
    for ax, key in zip(axes, ("iter", "evals", "seconds")):
        ax.semilogy(log[key], log["loss"], marker=".", label=label)
for ax, xlabel, title in zip(
    axes,
    ("iteration", "loss evaluations (forward + backward passes)", "wall-clock seconds (shared CPU: noisy)"),
    ("per iteration", "per function evaluation", "per second"),
):
    ax.set_xlabel(xlabel)
    ax.set_ylabel("total loss J (log scale)")
    ax.set_title(f"Adam vs L-BFGS, {title}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
plt.show()

fig, axes = plt.subplots(1, 4, figsize=(14, 3.9), layout="constrained")
panels = [("content", content_rgb), ("style", style_rgb)] + [
    (f"{label}\n{res.n_iter} it, {res.n_evals} evals, J={res.f:.2g}", net.deprocess(res.x))
    for label, (res, _) in runs.items()
]
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img)
    ax.set_title(title)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# **Reading the curves.** Adam starts faster: its first steps are a fixed 10 pixel values
# per coordinate, while L-BFGS's first iteration has no curvature pairs yet and spends several
# evaluations in the line search finding the problem's scale (the cell prints how many),
# gaining little. After a few iterations (the cell prints the first at which it is lower)
# L-BFGS is below Adam and pulls away; the last line prints the ratio of their final losses.
# Per evaluation the picture is nearly the same, because once the history fills, almost every
# L-BFGS iteration is accepted at the first trial $t = 1$ (compare its iterations and
# evaluations, printed above). Evaluations are what cost time (a forward and
# backward pass through VGG19; the two-loop recursion's dot products are negligible next to them),
# so the middle panel is the fair comparison; the right one shows the same in seconds, blurred
# by the other jobs on this shared machine. The images differ too: Adam's result is speckled with
# high-frequency colour noise that its per-pixel steps put in and do not take out; L-BFGS's is
# smoother. This is why Gatys et al. and most reference implementations use L-BFGS for
# single-image optimisation.
# Adam has its own advantages: no line search means a fixed cost per step, a memory of
# two image-sized arrays instead of $2m$, and it tolerates noisy gradients (L-BFGS does not);
# that is why it is the optimiser of choice when a *network* is trained to stylise.
#
# ## 3. Where to start: the content photo or noise
#
# The loss is not convex; where we start decides which minimum we end in.
# `scratchnst.transfer.levels.initial_image` makes the three starting points `stylize` offers:
# the content image, uniform noise over the pixel range, or a blend of the two. Gatys et
# al. start from white noise, which gives a different image for every seed; starting from
# the content photo converges faster and keeps its layout more faithfully.

# %%
rng = np.random.default_rng(0)
noise = initial_image(Settings(content="astronaut", styles=["starry_night"], init="noise"), content, net, rng)
res_noise, log_noise = run(obj.value_and_grad, noise, "lbfgs", ITERS_LONG)
res_content, log_content = runs["L-BFGS, m=10"]
print(f"from noise:   J = {res_noise.f:.3g} after {res_noise.n_iter} iterations")
print(f"from content: J = {res_content.f:.3g} after {res_content.n_iter} iterations")
for label, log in [("from noise", log_noise), ("from content", log_content)]:
    ratios_sc = np.array(log["style"]) / np.maximum(np.array(log["content"]), 1e-30)
    print(f"{label}: beta J_style / alpha J_content = {ratios_sc[0]:.3g} after iteration 1, "
          f"{ratios_sc[-1]:.3g} after iteration {len(ratios_sc)}")

# %%
fig = plt.figure(figsize=(14, 7.5), layout="constrained")
top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1])
axes = top.subplots(1, 4)
panels = [
    ("start: noise", net.deprocess(noise)), (f"from noise, {res_noise.n_iter} it", net.deprocess(res_noise.x)),
    ("start: content", content_rgb), (f"from content, {res_content.n_iter} it", net.deprocess(res_content.x)),
]
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img)
    ax.set_title(title)
    ax.set_axis_off()
axes = bottom.subplots(1, 2)
for label, log, colour in [("from noise", log_noise, "C3"), ("from content", log_content, "C0")]:
    axes[0].semilogy(log["iter"], log["loss"], color=colour, label=label)
    it = log["iter"][1:]
    axes[1].semilogy(it, log["content"], color=colour, label=f"{label}: alpha * J_content")
    axes[1].semilogy(it, log["style"], color=colour, linestyle="--", label=f"{label}: beta * J_style")
axes[0].set_title("total loss")
axes[1].set_title("the two weighted terms")
for ax in axes:
    ax.set_xlabel("L-BFGS iteration")
    ax.set_ylabel("loss (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=10)
plt.show()

# %% [markdown]
# The two total-loss curves end close together (the cell prints both), but the pictures have
# little in common: **different minima of similar loss.** The right-hand plot shows why. At
# $\alpha/\beta = 10^{-3}$ with these weights the style term dominates the content term, by a
# factor the cell prints at the first and the last iteration: from the content image it starts
# far above the content term and falls as the content term grows, but stays the larger, so the
# optimiser spends its effort on style. From the content image, the content term starts at zero
# and rises as style is painted in; the astronaut survives because we *started* from it and the
# content term holds it there. From noise, the content term hardly moves (flat red line): with
# the plain weights the result is a Starry-Night texture with, at most, a hint of the astronaut's
# large dark and light regions. The course's recipe starts from noise all the same; the next
# two sections show what it takes.

# %% [markdown]
# ## 3b. The course's recipe: from noise, step by step
#
# The lecture generates the image the simple way: initialise $G$ randomly, then repeat
# $G := G - \eta\,\partial J/\partial G$. Here is that recipe at a legible size, with plain
# gradient descent next to Adam and L-BFGS, all three from the same noise (`init="noise"`,
# uniform over the pixel range, `scratchnst.transfer.levels.initial_image`), with a snapshot
# every few iterations. It uses Gatys' normalised VGG19 where this version of scratchnst has it
# (the first cell says), and the `gatys` preset's own $\alpha$ and $\beta$.
#
# Plain gradient descent needs a step size $\eta$ in pixels per unit of gradient. We take the
# one that moves the largest pixel by 2 grey levels on the first step,
# $\eta = 2 / \max|g_0|$, and keep it; the gradient's scale changes during the run, which is
# why a fixed $\eta$ makes slow progress (Adam's per-pixel scaling and L-BFGS's line search
# are the two cures).

# %%
net_r = net_normalized if NORMALIZED else net
c_r = net_r.preprocess(images.load_image(images.bundled_image("astronaut"), long_side=NOISE_PX))
s_r = net_r.preprocess(images.load_image(images.bundled_image("starry_night"), long_side=NOISE_PX))
obj_r = scratchnst.Objective(net_r, c_r, s_r, alpha=None, beta=None, normalization="gatys")  # the preset's alpha, beta
x0_r = initial_image(Settings(content="astronaut", styles=["starry_night"], init="noise"), c_r, net_r,
                     np.random.default_rng(0))


def gradient_descent(fun, x0, iters, callback):
    """The lecture's G := G - eta dJ/dG, with eta fixed by the first step (2 grey levels at most)."""
    x = x0.copy()
    f, g = fun(x)
    eta = 2.0 / float(np.abs(g).max())
    for it in range(1, iters + 1):
        x = x - eta * g
        f, g = fun(x)
        callback(it, x, f)
    return x


recipe = {}
t0 = time.perf_counter()
for method in ("gradient descent", "adam", "lbfgs"):
    snaps, losses = {0: net_r.deprocess(x0_r)}, [obj_r.value(x0_r)]

    def record(it, x, f, snaps=snaps, losses=losses):
        losses.append(f)
        if it % SNAP_EVERY == 0:
            snaps[it] = net_r.deprocess(x)

    if method == "gradient descent":
        gradient_descent(obj_r.value_and_grad, x0_r, NOISE_ITERS, record)
    else:
        scratchnst.minimize(obj_r.value_and_grad, x0_r, method=method, max_iter=NOISE_ITERS,
                            callback=lambda opt, record=record: record(opt.n_iter, opt.x, opt.f),
                            **({"lr": 10.0} if method == "adam" else {}))
    recipe[method] = (snaps, losses)
    print(f"from noise, {method:16s}: loss {losses[0]:.3g} -> {losses[-1]:.3g} in {len(losses) - 1} iterations "
          f"(final / initial {losses[-1] / losses[0]:.2e})")
print(f"{NOISE_PX} px, {time.perf_counter() - t0:.0f} s for the three")

# %%
cols = sorted(set().union(*(snaps for snaps, _ in recipe.values())))
fig, axes = plt.subplots(3, len(cols), figsize=(2.3 * len(cols), 7.2), layout="constrained", squeeze=False)
for row, (method, (snaps, _)) in enumerate(recipe.items()):
    for ax, it in zip(axes[row], cols):
        if it in snaps:
            ax.imshow(snaps[it])
        ax.set_title(f"{method}, it {it}" if it == 0 else f"it {it}", fontsize=9)
        ax.set_axis_off()
fig.suptitle(f"From noise at {NOISE_PX} px ({'normalised' if NORMALIZED else 'plain'} VGG19): a snapshot every "
             f"{SNAP_EVERY} iterations", fontsize=12)
plt.show()

fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
for method, (_, losses) in recipe.items():
    ax.semilogy(losses, label=method)
ax.set_xlabel("iteration")
ax.set_ylabel("total loss J (log scale)")
ax.set_title("The course's recipe: three optimisers from the same noise")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# Read the snapshots left to right, and the loss ratios the cell printed. L-BFGS lays down the
# painting's colours and strokes within its first snapshots; Adam follows the same course more
# slowly and leaves fine colour noise; plain gradient descent with a fixed step falls slowest.
# What none of them does in these few iterations is bring back the astronaut: from noise, at
# the `gatys` preset's weights, the style terms pull hardest and the result is a Starry-Night
# texture in which the content shows faintly, if at all. More iterations alone do not change
# that (`benchmarks/README.md`, "Starting from noise": 200 iterations on one level end as
# texture, or with average pooling as the photo under speckle). What does is a change to the
# problem rather than to the optimiser: section 3c.
#
# ## 3c. From noise, done right
#
# Two changes, both what `Settings(init="noise")` (and `init="blend"`) now do unless told
# otherwise (`NOISE_START` in `scratchnst/transfer/settings.py`):
#
# * **coarse to fine** (section 6 has the mechanics): three levels, each twice the size of
#   the last and none smaller than 64 px (`COARSEST_SIDE`), so 64, 128 and 256 px for a
#   256 px image. VGG19 barely sees pixel-level noise (its first layers average 3 x 3 windows
#   and each pool reduces a 2 x 2 window to one value), so its gradient has almost nothing at
#   that scale: on one level the noise we start from is never removed, only painted over,
#   which is the speckle of the 3b runs. Coarse to fine leaves that speckle nowhere to hide.
#   Whatever the 64 px level leaves, bicubic upsampling turns into blobs two and then four
#   pixels wide at 128 and 256 px: structure VGG does see, which the finer levels reshape
#   into strokes or smooth away. And each finer level starts from the previous result
#   upsampled, a smooth image with no fresh pixel-level noise in it, so the only fine detail
#   at full size is what the optimiser puts there;
# * **average pooling**: max pooling hands each window's gradient to its largest input only,
#   and from noise the winners are wherever the noise happened to peak, so the content term's
#   pull reaches a scattered quarter of the positions at each of the three pools between the
#   image and `relu4_2`. Average pooling spreads it over every position of the window, and the
#   photo's layout can form out of noise. (Gatys et al. made the same swap in their texture
#   synthesis paper of 2015, noting that it "improves the gradient flow".)
#
# The recipe spends 200 iterations a level, twice the 100 of the reference started from the
# photo at the full size (the two coarse levels add about a third to that: an iteration at
# 128 px costs about a quarter of one at 256 px, at 64 px a sixteenth). The reference runs
# with average pooling too, so that the two losses are values of the same objective. Both are
# one `stylize` call; `Result.loss` is the loss of the final image, at the final level.
# The CI size runs one iteration a level at 128 px (two levels) and only shows that the code runs.

# %%
recipe_base = dict(content="astronaut", styles=["starry_night"], size=RECIPE_PX, seed=0)
t0 = time.perf_counter()
from_noise = stylize(Settings(**recipe_base, init="noise", iterations=RECIPE_ITERS))  # pooling, scales: NOISE_START
from_photo = stylize(Settings(**recipe_base, init="content", pooling="avg", iterations=REF_ITERS))
print(f"{RECIPE_PX} px, {time.perf_counter() - t0:.0f} s for the two")
for label, r in [("from noise", from_noise), ("from the photo", from_photo)]:
    settings = r.settings  # validate() has filled in pooling and scales
    levels = scale_sizes(settings.size, settings.scales)
    print(f"recipe {label:14s}: {settings.pooling} pooling, levels {levels} px, "
          f"iterations per level: {settings.iterations}; final loss {r.loss:.4g}")
print(f"final loss from noise / from the photo: {from_noise.loss / from_photo.loss:.3f}   (the bar: at most 1.10)")

style_recipe = images.load_image(images.bundled_image("starry_night"), long_side=RECIPE_PX)  # as stylize loads it
S_style = speckle(style_recipe)["worst"]
S_noise, S_photo = speckle(from_noise.rgb)["worst"], speckle(from_photo.rgb)["worst"]
print(f"speckle (top-octave share, worst of Y, Cb, Cr): style {S_style:.3f}, from noise {S_noise:.3f} "
      f"({S_noise / S_style:.2f}x the style's), from the photo {S_photo:.3f} ({S_photo / S_style:.2f}x)   "
      f"(the bar: at most 1.5x)")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained")
panels = [(f"from noise, {len(from_noise.history['total'])} it in all\nloss {from_noise.loss:.3g}", from_noise.rgb),
          (f"from the photo, {from_photo.iterations} it\nloss {from_photo.loss:.3g}", from_photo.rgb),
          ("style", style_recipe)]
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img)
    ax.set_title(title)
    ax.set_axis_off()
fig.suptitle(f"The recipe from noise against the start from the photo, {RECIPE_PX} px, average pooling", fontsize=12)
plt.show()

# %% [markdown]
# Two bars say whether the recipe has caught up with the start from the photo: a final loss
# within 10% of that start's, and a speckle measure (`scratchnst.transfer.speckle`: the share of spectral power
# in the top octave, the worst of Y, Cb and Cr) within 1.5 times the style image's at the
# same size. Compare the printed ratios with them (`benchmarks/README.md`, "Gatys' normalised
# network, the style weight, and starting from noise", has the blend start too). At the full
# size the picture from noise holds the astronaut: face, collar ring and helmet are where the
# photo has them, in the same strokes as the start from the photo, though fainter, and the
# suit has taken the painting's blues. Two different minima, as in section 3, and a loss ratio
# that is not a fixed number: the run from the photo is itself sensitive to rounding. Its first
# line search extrapolates from a tiny step, and a last-bit difference in the gradient (another
# split of the work between threads, say) picks another first step; 100 iterations later the
# loss can differ by more than half (`benchmarks/README.md` has two such runs). The start from the photo
# remains `scratchnst stylize`'s default, as in most implementations: it gets there in 100
# iterations on one level, where the recipe takes 200 on each of three. The course's
# programming assignment starts from a blend of photo and noise (`init="blend"`), which
# takes the same recipe.
#
# ## 4. The trade-off between content and style: $\alpha/\beta$
#
# Only the **ratio** $\alpha/\beta$ changes the minimiser (multiplying $J$ by a constant
# changes neither its minima nor, for L-BFGS and Adam, the path much). `scratchnst.stylize`
# runs on Gatys' normalised network by default, where the paper's $10^{-3}$ leaves the photo
# almost untouched: the ratios that matter are far smaller, and the `gatys` preset takes
# $\alpha/\beta = 2 \cdot 10^{-8}$ (`benchmarks/README.md`, "Gatys' normalised network"). We
# sweep four orders of magnitude around it, from $10^{-5}$ to $10^{-9}$ (the CI size runs the
# two ends), with `scratchnst.stylize`, which does exactly what we did above (load, build the
# `Objective`, start from the content, run L-BFGS) from a `Settings`. The content term grows
# with the number of pixels and the style term does not, so at a larger size the same ratio
# gives less style.

# %%
ratios = RATIOS
grid = {}
t0 = time.perf_counter()
for r in ratios:
    settings = Settings(content="astronaut", styles=["starry_night"], size=PX, iterations=ITERS,
                        alpha=1.0, beta=1.0 / r, seed=0)
    grid[r] = stylize(settings)
print(f"{len(ratios)} runs of {ITERS} L-BFGS iterations from the content photo, {PX} px, "
      f"in {time.perf_counter() - t0:.0f} s; more style to the right")

fig, axes = plt.subplots(1, len(ratios), figsize=(3.0 * len(ratios), 3.6), layout="constrained")
for ax, r in zip(axes, ratios):
    h = grid[r].history
    ax.imshow(grid[r].rgb)
    ax.set_title(f"alpha/beta = {r:.0e}\ncontent {h['content'][-1]:.1e}, style {h['style'][-1]:.1e}", fontsize=10)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# From left to right the painting takes over: at the largest ratio the content term holds the
# photo, at the smallest the astronaut is drawn in the painting's strokes and colours, and the
# layout stays throughout because every run starts from the photo (section 3). The titles give
# the final unweighted terms: the content term grows as the ratio falls (the image moves away
# from the photo) while the style term falls.

# %% [markdown]
# ### 4b. Gatys et al.'s Figure 3: style layers against $\alpha/\beta$
#
# Gatys et al.'s Figure 3 varies two things at once: down the rows, the style is matched with
# `relu1_1` only, then `relu1_1` and `relu2_1`, and so on up to all five layers; across the
# columns, $\alpha/\beta$ falls (the paper's $10^{-2}$ to $10^{-5}$ on its network; $10^{-5}$ to $10^{-8}$
# on ours, at this small size). To keep the notebook to a few minutes we run three of the rows
# (`relu1_1`; up to `relu3_1`; all five), and fewer still at the small size. The paper starts
# from noise; so do we where the normalised network is available, and from the content photo
# otherwise (the plain network from noise is section 7's first failure). From noise, `stylize`
# also takes the paper's average pooling (section 3c); at this size, on one level.

# %%
INIT = "noise" if NORMALIZED else "content"
base = dict(content="astronaut", styles=["starry_night"], size=GRID_PX, iterations=GRID_ITERS, seed=0, init=INIT)
LAYER_SETS = {d: STYLE[:d] for d in GRID_DEPTHS}
fig3 = {}
t0 = time.perf_counter()
for d, style_layers in LAYER_SETS.items():
    for r in GRID_RATIOS:
        fig3[d, r] = stylize(Settings(**base, alpha=1.0, beta=1.0 / r, style_layers=list(style_layers)))
print(f"{len(fig3)} runs of {GRID_ITERS} iterations from {INIT}, {GRID_PX} px, in {time.perf_counter() - t0:.0f} s")

fig, axes = plt.subplots(len(LAYER_SETS), len(GRID_RATIOS), figsize=(2.4 * len(GRID_RATIOS), 2.5 * len(LAYER_SETS)),
                         layout="constrained", squeeze=False)
for i, (d, style_layers) in enumerate(LAYER_SETS.items()):
    for j, r in enumerate(GRID_RATIOS):
        axes[i, j].imshow(fig3[d, r].rgb)
        axes[i, j].set_xticks([])
        axes[i, j].set_yticks([])
        if i == 0:
            axes[i, j].set_title(f"alpha/beta = {r:.0e}", fontsize=10)
        if j == 0:
            axes[i, j].set_ylabel("relu1_1" if d == 1 else f"relu1_1 … {style_layers[-1]}", fontsize=9)
fig.suptitle(f"Style layers (rows) against alpha/beta (columns), from {INIT}", fontsize=12)
plt.show()

# %% [markdown]
# As in the paper: reading down a column, the structures taken from the painting grow with
# the deepest layer used, from colour speckle (`relu1_1` only) to strokes and swirls; reading
# along a row, less and less of the photo's layout survives as $\alpha/\beta$ falls. How much
# survives at a given ratio depends on the network and the start (with the plain weights from
# the content photo, the photo holds on to much more).
#
# ### 4c. The content layer, and the pooling
#
# Gatys et al. match content at `relu4_2` and replace VGG's max pooling by average pooling. The
# next cell runs the same transfer with the content taken from a shallow layer (`relu2_2`), the
# usual one (`relu4_2`) and the deepest (`relu5_2`), all with max pooling (given explicitly: from
# noise the default would be average), and then `relu4_2` with average pooling.

# %%
choices = {f"content {c}": dict(content_layers=[c], pooling="max") for c in CONTENT_LAYERS}
choices["relu4_2, avg pooling"] = dict(content_layers=["relu4_2"], pooling="avg")
variants = {label: stylize(Settings(content="astronaut", styles=["starry_night"], size=PX, iterations=ITERS,
                                    seed=0, init=INIT, **kw)) for label, kw in choices.items()}
fig, axes = plt.subplots(1, len(variants), figsize=(3.0 * len(variants), 3.4), layout="constrained")
for ax, (label, r) in zip(axes, variants.items()):
    ax.imshow(r.rgb)
    ax.set_title(label, fontsize=10)
    ax.set_axis_off()
plt.show()
for label, r in variants.items():
    print(f"{label:22s}: final loss {r.loss:.3g}")

# %% [markdown]
# A shallow content layer pins the photo's pixels, so the style can only tint it; `relu5_2`
# keeps only the rough arrangement, so the painting's strokes take over; `relu4_2` sits between,
# the layout kept and the surface repainted. (The losses are not comparable between content
# layers: each is a different cost.) Average pooling passes every pixel's gradient, not only
# each window's winner's, so the strokes come out smoother; the difference is subtle at this
# size.
#
# ## 5. Colour preservation, briefly
#
# Style transfer copies the painting's palette as well as its strokes. Gatys et al.
# ("Preserving Color in Neural Artistic Style Transfer", 2016) give two fixes, both in
# `scratchnst/method/color.py` and switched on by `Settings(preserve_color=...)`:
#
# * **luminance only** (`"luminance"`): convert both images to YIQ, run the transfer on
#   the luminance channel $Y$ alone (the style's $Y$ first matched to the content's mean and
#   spread), then put back the content's chroma $I, Q$ (`luminance_only_inputs`,
#   `luminance_only_output`);
# * **colour histogram matching** (`"histogram"`): before the transfer, transform the style
#   image's pixels linearly, $p \mapsto A p + b$, so their mean and covariance equal the
#   content's (`match_color_histogram`; $A$ from Cholesky factors of the two covariances).

# %%
colour_runs = {"none": grid[2e-8]}  # the preset's ratio
for mode in ("luminance", "histogram"):
    colour_runs[mode] = stylize(Settings(content="astronaut", styles=["starry_night"], size=PX,
                                         iterations=ITERS, preserve_color=mode))
fig, axes = plt.subplots(1, 4, figsize=(13, 3.7), layout="constrained")
panels = [("content", content_rgb)] + [(f"preserve_color={m!r}", r.rgb) for m, r in colour_runs.items()]
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img)
    ax.set_title(title)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# Luminance-only keeps the photo's colours exactly and takes only the light-and-dark
# pattern of the strokes; histogram matching repaints the style image in the photo's
# palette first, so the strokes keep their own colour variation but within the photo's
# colour range.
#
# ## 6. Multi-scale, briefly
#
# The receptive fields of VGG19's units have a fixed size in pixels (tutorial 01), so on
# a large image the style layers see only small pieces of it: the texture comes out
# fine-grained and large structures are not coordinated. And every iteration at full
# size is expensive. Coarse-to-fine optimisation fixes both: optimise a half-size image
# first, upsample the result (bicubic, `scratchnst.transfer.levels.upsample`) and use it as the
# start at the next size. `Settings(scales=k)` runs $k$ levels, each twice the previous;
# `scales=0` picks as many as keep the smallest at least 256 px (`scale_sizes`):

# %%
for size in (256, 512, 1024, 2048):
    print(f"size {size:4d}, scales=0 -> levels {scale_sizes(size, 0)}")

# The half-size level must still reach relu5_1 (the style image's short side / 16 >= 1),
# so the small (CI) run does this section at 64 px.
MS_PX = max(PX, 64)
one_level = grid[2e-8] if MS_PX == PX else stylize(
    Settings(content="astronaut", styles=["starry_night"], size=MS_PX, iterations=ITERS))
two_level = stylize(Settings(content="astronaut", styles=["starry_night"], size=MS_PX, iterations=ITERS,
                             scales=2))
levels = np.asarray(two_level.history["level"])
fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), layout="constrained", width_ratios=[1, 1, 1.4])
axes[0].imshow(one_level.rgb)
axes[0].set_title(f"one level, {MS_PX} px, {ITERS} it")
axes[1].imshow(two_level.rgb)
axes[1].set_title(f"two levels {scale_sizes(MS_PX, 2)} px, {ITERS} it each")
for ax in axes[:2]:
    ax.set_axis_off()
axes[2].semilogy(one_level.history["total"], label="one level")
axes[2].semilogy(two_level.history["total"], label="two levels (dashed: next level starts)")
for k in np.flatnonzero(np.diff(levels)):
    axes[2].axvline(k + 0.5, color="k", linestyle="--")
axes[2].set_xlabel("iteration (all levels in sequence)")
axes[2].set_ylabel("total loss (log scale)")
axes[2].set_title("loss per iteration")
axes[2].grid(True, which="both", alpha=0.3)
axes[2].legend(fontsize=10)
plt.show()
print(f"final loss: one level {one_level.history['total'][-1]:.3g}, two levels {two_level.history['total'][-1]:.3g}")

# %% [markdown]
# The loss at the coarse level is not comparable with the fine level's (a different
# number of positions $M_l$ in every term), which is why the curve jumps at the dashed line.
# What matters is the start of the fine level: it begins from an image that already has the
# style's coarse statistics, and after the same number of iterations at the full size it ends
# lower than the single-level run (the cell prints both). The picture shows the other effect:
# the swirls are larger, because they were laid down at half the size, where each style layer's
# receptive field covers twice as much of the picture. At large sizes
# (exercise 4) coarse-to-fine is also much cheaper, since most iterations run at low resolution.
#
# ## 7. A gallery of failures
#
# Four ways a run goes wrong, each with the setting that causes it:
#
# * **noise start on the plain network**: section 3's run from noise. The deepest style layers
#   dominate the loss (section 1b), so the optimiser paints texture and the content barely
#   appears. More iterations alone do not fix it; section 3c's recipe does (Gatys' normalised
#   network, coarse to fine, average pooling);
# * **style scale too small** (`Settings(style_scale=0.4)`): the painting is shrunk before its
#   Grams are taken, so its strokes are tiny and its large structures fall below the
#   deepest layers' receptive fields: fine, busy texture;
# * **style scale too large** (`style_scale=3`): each of the network's receptive fields sees a
#   small piece of a huge painting, so the "style" is a close-up: broad patches of colour, few strokes;
# * **too few iterations**: from noise, a handful of L-BFGS iterations leave mostly noise.

# %%
GAL_PX = max(PX, 64)   # the small style scale must still reach relu5_1
gallery = {"noise start, plain VGG19": net.deprocess(res_noise.x)}   # section 3's run
FEW = max(2, ITERS // 10)
for label, kw in [("style_scale=0.4", dict(style_scale=0.4)), ("style_scale=3", dict(style_scale=3.0)),
                  (f"noise start, {FEW} iterations", dict(init="noise", iterations=FEW))]:
    kw = {"iterations": ITERS} | kw
    gallery[label] = stylize(Settings(content="astronaut", styles=["starry_night"], size=GAL_PX, seed=0, **kw)).rgb
fig, axes = plt.subplots(1, len(gallery), figsize=(3.2 * len(gallery), 3.4), layout="constrained")
for ax, (label, img) in zip(axes, gallery.items()):
    ax.imshow(img)
    ax.set_title(label, fontsize=10)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## 8. Next: feed-forward style transfer
#
# Every image above was an optimisation: hundreds of forward and backward passes through VGG19
# for one picture. **Johnson, Alahi and Fei-Fei (2016)** ("Perceptual losses for real-time style
# transfer") train instead a *transformation network* (convolutions down, residual blocks,
# convolutions up) that maps a photo to its stylised version in one forward pass. What they keep
# of Gatys: the loss. VGG's content cost and the Gram-matrix style cost (their "perceptual
# losses", exactly `Objective`'s terms) are what the network is trained to minimise, over a
# large set of photos, by Adam (section 2: noisy gradients over a data set are Adam's home ground).
# What they change: the optimisation moves from the pixels of one image to the weights of a
# network, done once per style; after that, stylising is milliseconds, at the price of one
# network per style and somewhat lower quality than a long per-image optimisation.
#
# **Instance normalisation** (Ulyanov, Vedaldi and Lempitsky 2016) replaces batch normalisation
# in that network by normalising each channel of each image by its own mean and standard
# deviation. It removes the content image's contrast from the features, and markedly improves the
# results; it is a hint that a style lives in per-channel statistics. **AdaIN** (Huang and
# Belongie 2017) takes that literally: encode content and style with VGG, give each content
# channel the style's channel mean and standard deviation,
# $\mathrm{AdaIN}(x, y) = \sigma(y)\,\frac{x - \mu(x)}{\sigma(x)} + \mu(y)$, and decode; one
# network then handles *any* style. Its style loss matches those means and standard deviations
# instead of Gram matrices: the first and second moments per channel, where the Gram holds
# all the channel pairs' second moments. The ingredients of this notebook (VGG features, a
# content cost, statistics of features as style) remain; what each method adds is a way to
# pay for the optimisation once instead of for every image.
#
# ## Summary
#
# * Style transfer fits on one page (section 0): tutorial 02's layers, a Gram, two costs, one
#   backward pass, an optimiser loop; the package adds speed, checks and conveniences.
# * The style-transfer loss is $J = \alpha J_\text{content} + \beta J_\text{style} + \lambda J_\text{TV}$;
#   every term's gradient with respect to the activations is a line of algebra, and one
#   backward pass carries all of them back to the image (`scratchnst.method.objective.Objective`).
# * **Adam** scales each pixel's step by its gradient history: one evaluation per step,
#   robust, but slow to converge on this smooth, deterministic problem.
# * **L-BFGS** builds a curvature model from the last $m$ steps (two-loop recursion) and
#   chooses each step length with a strong Wolfe line search; it reaches a given loss in
#   far fewer evaluations here (`scratchnst.method.lbfgs.LBFGS`, `scratchnst.method.line_search.strong_wolfe`).
# * Starting from the content image converges faster and keeps the layout; starting from
#   noise, the course's and the paper's recipe, needs a balanced loss (with the plain weights
#   one style layer takes nearly all of it, and Gatys' normalised network spreads it over the
#   layers, section 1b), coarse-to-fine levels, average pooling and about twice the
#   iterations (section 3c); then it comes close to the start from the photo.
# * $\alpha/\beta$ moves the result continuously from photo to texture; colour preservation
#   and coarse-to-fine levels are small changes around the same optimisation.
#
# ## Exercises
#
# **0. Write it yourself: the two-loop recursion.** Fill in `two_loop` from its docstring
# (section 2 has the pseudocode; don't peek at `LBFGS.direction`), then run the check cell: it
# compares your direction with $-Hg$, where $H$ is built densely by the BFGS update formula
# from the same pairs (with 0, 1 and 4 pairs), using `gradcheck.rel_error`. An answer is in
# `tutorials/solutions.py`.

# %%
from exercises import check_exercise  # tutorials/exercises.py  # noqa: E402


def two_loop(g, s, y):
    """The L-BFGS search direction d = -H g by the two-loop recursion.

    Parameters
    ----------
    g : ndarray (n,), the current gradient
    s, y : lists of ndarray (n,), the stored steps and gradient changes, oldest first
        (each pair has y'.s > 0)

    Returns
    -------
    d : ndarray (n,), -H g, with H_0 = gamma I, gamma = s'y / y'y of the newest pair;
        -g when the lists are empty.
    """
    raise NotImplementedError  # your code here: about ten lines


# %%
check_exercise("two_loop", two_loop)

# %% [markdown]
# 1. Run Adam with `lr` 1, 3, 10 and 30 for the same number of evaluations and add the
#    curves to the comparison. Which learning rate comes closest to L-BFGS, and what
#    goes wrong at the largest?
# 2. In `scratchnst/method/lbfgs.py`, try `LBFGS(history_size=...)` of 1, 3, 10 and 30 (pass it to
#    `minimize` as `history_size=`). How much does the memory buy? With `history_size=1`,
#    how does L-BFGS compare with Adam?
# 3. Add a total-variation term (`tv_weight` in `Objective` or `Settings`) and find the
#    smallest weight that visibly smooths the result from noise. Why does it matter more
#    from noise than from the content photo?
# 4. With `Settings(size=256, scales=1)` and `scales=2`, compare the images and the time
#    taken for the same total number of iterations at the final size.
# 5. Derive $\partial J_\text{style}/\partial F^l$ for the `jcjohnson` preset
#    (`scratchnst.method.presets.PRESETS`) and check it against `style_layer_cost` with a
#    finite difference, as in section 1.
