# %% [markdown]
# # 05 · Generating the image: the objective and its optimisers
#
# The earlier tutorials built VGG19 with a backward pass and the content and style
# costs. Here we put them together into one number to minimise and then minimise it:
# the image itself is the variable, and the network stays fixed.
#
# **What you will do**
#
# * write down the total loss $J = \alpha J_\text{content} + \beta J_\text{style}$ (+ TV),
#   derive its gradient, and check that gradient with a finite difference;
# * minimise it with **Adam** and with **L-BFGS** on the same problem and compare their
#   loss curves per iteration, per loss evaluation and per second;
# * start once from the content photo and once from noise;
# * sweep the content/style ratio $\alpha/\beta$ and see the trade-off as a grid;
# * try colour preservation and coarse-to-fine (multi-scale) optimisation, briefly.
#
# **What you will learn**: how one forward and one backward pass give the gradient of
# every term at once; how the two-loop recursion turns ten stored steps into a
# quasi-Newton direction; why L-BFGS needs a *strong Wolfe* line search; why the
# starting image and the weights matter.
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
# at 32 px; the default `full` uses 96 px and takes a few minutes.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchnst
from scratchnst.files import images
from scratchnst.network.gradcheck import check_directional
from scratchnst.transfer.levels import initial_image, scale_sizes
from scratchnst.transfer.loop import stylize
from scratchnst.transfer.settings import Settings

SIZE = os.environ.get("SCRATCHNST_TUTORIAL_SIZE", "full")
if SIZE == "small":
    PX, ITERS_LONG, ITERS = 32, 3, 1     # CI: seconds
else:
    PX, ITERS_LONG, ITERS = 96, 50, 30   # legible results in a few minutes on a laptop CPU

plt.rcParams.update({"font.size": 11, "axes.titlesize": 11, "figure.dpi": 100})
print(f"size={SIZE}: {PX} px, {ITERS_LONG} iterations for the optimiser comparison, {ITERS} for the sweeps")

# %% [markdown]
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
# That is all `scratchnst.method.objective.Objective` does: its constructor computes the
# targets $P^c$ and $A^l$ once; `Objective.value_and_grad(x)` (method `_evaluate`) runs
# the forward pass, calls `content_cost` and `style_layer_cost` from
# `scratchnst/method/costs.py` for each layer, scales them by $\alpha$ and $\beta$, and runs
# the one backward pass. The constants ($\frac12$, $\frac{1}{4N^2M^2}$, $w_l$) are those of
# the `gatys` preset; `scratchnst.method.presets.PRESETS` lists the others that published
# code uses.

# %%
net = scratchnst.load_vgg19(dtype="float32")
content_rgb = images.load_image(images.bundled_image("astronaut"), long_side=PX)      # (H, W, 3) uint8
style_rgb = images.load_image(images.bundled_image("starry_night"), long_side=PX)
content = net.preprocess(content_rgb)                                                # (3, H, W) float32
style = net.preprocess(style_rgb)

obj = scratchnst.Objective(net, content, style, alpha=1.0, beta=1e3, normalization="gatys")
loss, grad = obj.value_and_grad(content)
print(f"content {content.shape}, style {style.shape}; J(content image) = {loss:.4g}, grad {grad.shape} {grad.dtype}")
print("unweighted terms:", {k: f"{v:.3g}" for k, v in obj.terms.items() if k != "layers"})
for name, J in obj.terms["layers"]["style"].items():
    print(f"  style {name}: {J:.3g}")

# %% [markdown]
# At the content photo itself $J_\text{content} = 0$, and the whole loss is style.
# Notice how unequal the five style layers are: `relu4_1` alone carries over 99% of the
# style loss, `relu1_1` a millionth of it. The $\frac{1}{4N^2M^2}$ constant does not equalise
# the layers (their activations differ in scale by orders of magnitude with these weights),
# so in practice the optimiser mostly matches the deepest layers' Grams. That is a property
# of the normalisation, not of the image, and one reason published implementations differ
# (`scratchnst.method.presets.explain` prints the constant each preset puts on each layer).
#
# **Check the gradient before trusting it.** A directional finite difference costs two
# extra loss evaluations: along a random direction $v$,
# $\frac{J(x + hv) - J(x - hv)}{2h} \approx \langle \nabla J(x), v\rangle$.
# In float32 the difference of two numbers of size $10^{13}$ is mostly rounding, so we
# check in float64 on a small copy of the problem (`scratchnst.network.gradcheck.check_directional`).
# The step $h$ must be small: ReLU and max pooling have kinks, and a step that carries some
# units across one makes the estimate wrong by $O(h)$ (with $h = 10^{-3}$ the error here is
# $2.5 \times 10^{-4}$, falling tenfold per tenfold smaller $h$; at $h = 10^{-5}$ no unit crosses).

# %%
net64 = scratchnst.load_vgg19(dtype="float64")
c64 = net64.preprocess(images.resize_long_side(content_rgb, 32))
s64 = net64.preprocess(images.resize_long_side(style_rgb, 32))
obj64 = scratchnst.Objective(net64, c64, s64, alpha=1.0, beta=1e3, tv_weight=1.0)
x64 = c64 + np.random.default_rng(0).normal(0, 5, c64.shape)   # away from the content image, where J_content = 0
_, g64 = obj64.value_and_grad(x64)
err, analytic, numeric = check_directional(obj64.value, x64, g64, h=1e-5)
print(f"<grad, v> = {analytic:.6e}   finite difference = {numeric:.6e}   relative error = {err:.1e}")
del net64, obj64

# %% [markdown]
# ## 2. Two optimisers
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
# with the same `start` / `step` / `state_dict` interface as L-BFGS.
#
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
# $d$ the right length, so the step $t = 1$ is usually a good first guess.
#
# **The line search.** Along $d$ we look for a step $t$ with $\phi(t) = J(x + t d)$ meeting
# the **strong Wolfe conditions**
#
# $$
# \phi(t) \le \phi(0) + c_1 t\, \phi'(0) \quad\text{(sufficient decrease)}, \qquad
# |\phi'(t)| \le c_2 |\phi'(0)| \quad\text{(curvature)},
# $$
#
# with $c_1 = 10^{-4}$, $c_2 = 0.9$. The first rules out steps that barely help; the second
# rules out steps that stop too early, and it guarantees $y^\top s = \phi'(t) - \phi'(0) > 0$,
# which keeps every $\rho_i$ positive and $H$ positive definite, so $d$ stays a descent
# direction. The search first brackets an interval that contains such a $t$, then
# shrinks it, each trial at the minimiser of the cubic through the two ends' values and
# slopes. Each trial costs an evaluation, so one L-BFGS iteration costs **one or more**
# evaluations.
#
# Code: in `scratchnst/method/lbfgs.py`, `LBFGS.direction` is the two-loop recursion line
# for line; in `scratchnst/method/line_search.py`, `strong_wolfe` is the line search
# (`_bracket` and `_zoom` its two phases, `_cubic_min` the cubic); `LBFGS.step` ties them
# together, stores a pair only when $s^\top y$ is clearly positive, and falls back to $-g$
# if the direction ever fails.
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
# per coordinate, while L-BFGS's first iteration has no curvature pairs yet and spends four
# evaluations in the line search finding the problem's scale, gaining little. From the
# fourth iteration on, L-BFGS is lower and pulls away steadily: after 50 iterations its loss
# is about half of Adam's (5.6e11 against 1.0e12). Per evaluation the picture is nearly the
# same, because once the history fills, almost every L-BFGS iteration is accepted at the first
# trial $t = 1$ (54 evaluations for 50 iterations). Evaluations are what cost time (a forward and
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
# The two total-loss curves end at the same value, but the pictures have nothing in
# common: **different minima of nearly equal loss.** The right-hand plot shows why. At
# $\alpha/\beta = 10^{-3}$ with these weights the style term is about ten times the content
# term throughout, so the optimiser spends its effort on style. From the content image, the
# content term starts at zero and rises as style is painted in; the astronaut survives
# because we *started* from it and the content term holds it there. From noise, the content
# term hardly moves in 50 iterations (flat red line): the result is a Starry-Night texture
# with, at most, a hint of the astronaut's large dark and light regions. From noise, a
# recognisable content needs a larger $\alpha/\beta$ or many more iterations (Gatys et al.
# ran hundreds to thousands).
#
# ## 4. The trade-off between content and style: $\alpha/\beta$
#
# Only the **ratio** $\alpha/\beta$ changes the minimiser (multiplying $J$ by a constant
# changes neither its minima nor, for L-BFGS and Adam, the path much). We sweep it over four
# orders of magnitude, from $10$ down to the paper's $10^{-3}$, with `scratchnst.stylize`,
# which does exactly what we did above (load, build the `Objective`, start from the content,
# run L-BFGS) from a `Settings`.

# %%
ratios = [1e1, 1e0, 1e-1, 1e-2, 1e-3]
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
# At $\alpha/\beta = 10$ the content term holds the photo: only a faint speckle of the
# painting's colours appears. At $1$ the flat background fills with Van Gogh's blues and
# yellows while the face and the suit stay clean. At $10^{-1}$ the strokes spread onto the
# suit and the face. At $10^{-2}$ and $10^{-3}$ (the paper's value) the background turns into
# swirls, a yellow moon appears top right, and the astronaut is drawn in the painting's
# strokes; the two differ little, because here both start from the photo and stop after 30
# iterations, and the layout stays because we started from it (section 3). Started from noise
# with enough iterations, the small ratios would lose the astronaut altogether (Gatys et al.,
# figure 3). Note the weighted terms in the titles: even at $\alpha/\beta = 1$ the style term
# is as large as the content term, a consequence of this preset's constants.
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
colour_runs = {"none": grid[1e-3]}
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
one_level = grid[1e-3] if MS_PX == PX else stylize(
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

# %% [markdown]
# The loss at the coarse level is not comparable with the fine level's (a different
# number of positions $M_l$ in every term), which is why the curve jumps at the dashed line.
# What matters is the start of the fine level: it begins from an image that already has the
# style's coarse statistics, and after the same 30 iterations at 96 px it ends lower than the
# single-level run (about 6e11 against 9e11). The picture shows the other effect: the swirls
# are larger, because they were laid down at 48 px, where each style layer's receptive field
# covers twice as much of the picture; and less of the photo's orange survives. At large sizes
# (exercise 4) coarse-to-fine is also much cheaper, since most iterations run at low resolution.
#
# ## Summary
#
# * The style-transfer loss is $J = \alpha J_\text{content} + \beta J_\text{style} + \lambda J_\text{TV}$;
#   every term's gradient with respect to the activations is a line of algebra, and one
#   backward pass carries all of them back to the image (`scratchnst.method.objective.Objective`).
# * **Adam** scales each pixel's step by its gradient history: one evaluation per step,
#   robust, but slow to converge on this smooth, deterministic problem.
# * **L-BFGS** builds a curvature model from the last $m$ steps (two-loop recursion) and
#   chooses each step length with a strong Wolfe line search; it reaches a given loss in
#   far fewer evaluations here (`scratchnst.method.lbfgs.LBFGS`, `scratchnst.method.line_search.strong_wolfe`).
# * Starting from the content image converges faster and keeps the layout; starting from
#   noise gives the paper's varied, more painterly results but needs more iterations.
# * $\alpha/\beta$ moves the result continuously from photo to texture; colour preservation
#   and coarse-to-fine levels are small changes around the same optimisation.
#
# ## Exercises
#
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
