# %% [markdown]
# # 02 · Convolution, ReLU and pooling, forward and backward by hand
#
# Style transfer changes the *pixels* of an image so that a loss measured deep
# inside VGG19 goes down. That needs the gradient of the loss with respect to the
# input image, and that gradient is built from the backward passes of just three
# kinds of layer: a 3×3 convolution, a ReLU, and a 2×2 pooling. This notebook
# derives all of them, checks each one numerically, and finishes by checking the
# whole of VGG19 at once.
#
# **What you will do**
#
# * derive the forward and backward passes of convolution (with respect to the
#   input *and* the weights), ReLU, max pooling and average pooling;
# * run a tiny convolution with numbers small enough to check in your head, and
#   see how `im2col` turns it into one matrix product;
# * verify every backward pass against central finite differences in float64 with
#   `scratchnst.network.gradcheck`, and watch the checker catch two deliberately wrong
#   gradients;
# * check the gradient of the whole VGG19 with one directional derivative.
#
# **What you will learn**: why the backward pass of a convolution is another
# convolution (with the kernel flipped and its channel axes swapped); where the
# gradient of a pooling layer goes (ties, odd sizes); how to tell a correct
# gradient from a wrong one with a single number, the relative error.
#
# **What you need**: NumPy, the chain rule, and the package open beside you:
# [`scratchnst/network/layers.py`](../scratchnst/network/layers.py) (the ops) and
# [`scratchnst/network/gradcheck.py`](../scratchnst/network/gradcheck.py) (the checker). About a
# minute of CPU time.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchnst
from scratchnst.files.images import bundled_image, load_image
from scratchnst.network import gradcheck, layers

SIZE = os.environ.get("SCRATCHNST_TUTORIAL_SIZE", "full")
VGG_SIDE = 48 if SIZE == "full" else 32  # long side of the image for the whole-network check

plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "figure.dpi": 100})
np.set_printoptions(precision=3, suppress=True, linewidth=110)
rng = np.random.default_rng(0)  # non-degenerate random inputs: all-zero inputs can hide a wrong backward
print("size:", SIZE)

# %% [markdown]
# ## 1. Conventions
#
# Every op in `scratchnst.network.layers` is a pair of free functions, as in the cs231n
# assignments:
#
# ```python
# out, cache = op_forward(x, ...)
# dx = op_backward(dout, cache)
# ```
#
# An image or an activation is one array shaped $(C, H, W)$: channels, rows,
# columns. There is no batch axis, because style transfer optimises a single
# picture. `dout` is $\partial L / \partial\,\mathrm{out}$ for some scalar loss
# $L$ further up the network, and the backward returns
# $\partial L / \partial x$. Written with the Jacobian $J = \partial\,\mathrm{out}/\partial x$,
# the backward computes the **vector-Jacobian product**
#
# $$\frac{\partial L}{\partial x_k} = \sum_m \frac{\partial L}{\partial\,\mathrm{out}_m}\,
#   \frac{\partial\,\mathrm{out}_m}{\partial x_k}, \qquad\text{i.e.}\qquad dx = J^\top\, dout,$$
#
# without ever forming $J$ (for a VGG layer it would have billions of entries).
#
# ## 2. Convolution, forward
#
# A convolution with $O$ output channels, kernel $w$ of shape $(O, C, k_h, k_w)$,
# bias $b$ of shape $(O,)$ and $p$ zeros of padding on every side computes
# (like PyTorch and Caffe, this is really a *cross-correlation*: the kernel is not flipped)
#
# $$\mathrm{out}[o, i, j] = b[o] + \sum_{c=0}^{C-1}\sum_{u=0}^{k_h-1}\sum_{v=0}^{k_w-1}
#   w[o, c, u, v]\; x_{\mathrm{pad}}[c,\, i+u,\, j+v],$$
#
# with output size $H_o = H + 2p - k_h + 1$, $W_o = W + 2p - k_w + 1$. VGG19 uses
# $3\times 3$ kernels with $p = 1$, so $H_o = H$: its convolutions never change the
# image size; only the pools do.
#
# A worked example, small enough to check by hand: a $4\times 4$ single-channel
# image holding $1, \dots, 16$, and one $3\times 3$ kernel that takes the centre pixel
# minus its left neighbour: a **vertical-edge** detector, in the course's words (and tutorial
# 01's): it responds where brightness changes from left to right, that is, along an edge that
# runs vertically.

# %%
x = np.arange(1.0, 17.0).reshape(1, 4, 4)  # (C=1, H=4, W=4)
w = np.zeros((1, 1, 3, 3))  # (O=1, C=1, kh=3, kw=3)
w[0, 0, 1, 1], w[0, 0, 1, 0] = 1.0, -1.0  # centre minus left neighbour
b = np.zeros(1)

out, cache = layers.conv2d_forward(x, w, b, pad=1)
print("x[0] =\n", x[0])
print("w[0, 0] =\n", w[0, 0])
print("out[0] =\n", out[0])

# %% [markdown]
# Check one entry by hand. $\mathrm{out}[0, 1, 2]$ reads the window of
# $x_{\mathrm{pad}}$ at rows $1..3$, columns $2..4$, i.e. $x$ rows $0..2$, columns
# $1..3$, whose centre is $x[0,1,2] = 7$ and left neighbour $x[0,1,1] = 6$:
# $7 - 6 = 1$. Every interior entry is $1$ because the image grows by one per
# column. The first column is different: its left neighbour is a padded zero, so
# it just copies $x$ ($1, 5, 9, 13$).
#
# ## 3. im2col: a convolution as one matrix product
#
# The triple sum over $(c, u, v)$ is a dot product between the kernel and one
# window of the image. `im2col` copies every window into a column of a matrix, so
# that all the dot products become a single matrix product:
#
# $$\mathrm{cols}[(c,u,v),\, (i,j)] = x_{\mathrm{pad}}[c, i+u, j+v],
#   \qquad \mathrm{out} = \underbrace{w}_{O \times C k_h k_w}\;
#   \underbrace{\mathrm{cols}}_{C k_h k_w \times H_o W_o} + b.$$
#
# `scratchnst.network.layers.conv2d_forward` does exactly this; the copying is
# `scratchnst.network.layers.im2col`, a loop over the $k_h k_w = 9$ kernel offsets in
# which each step copies one shifted slice of the whole image. Below, each column of
# the right panel is one $3\times 3$ window of the padded image, read row by row; the
# outlined column is the window outlined on the left.

# %%
pad, kh, kw = 1, 3, 3
xpad = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))  # (1, 6, 6)
Ho, Wo = 4, 4
cols = layers.im2col(xpad, kh, kw, Ho, Wo).reshape(1 * kh * kw, Ho * Wo)  # (9, 16)
print("cols shape:", cols.shape, "  w @ cols == conv2d_forward:", np.allclose(w.reshape(1, 9) @ cols, out.reshape(1, 16)))

i, j = 1, 2  # the output pixel we checked by hand
fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1, 2.3]})
ax = axes[0]
ax.imshow(xpad[0], cmap="Blues", vmin=-4, vmax=20)
for (r, c), v in np.ndenumerate(xpad[0]):
    ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=11)
ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 3, 3, fill=False, ec="crimson", lw=3))
ax.set_title("padded image $x_{pad}$ (pad = 1)\nwindow of output pixel (1, 2)")
ax.set_xlabel("column")
ax.set_ylabel("row")
ax = axes[1]
ax.imshow(cols, cmap="Blues", vmin=-4, vmax=20, aspect="auto")
for (r, c), v in np.ndenumerate(cols):
    ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=10)
p = i * Wo + j
ax.add_patch(plt.Rectangle((p - 0.5, -0.5), 1, 9, fill=False, ec="crimson", lw=3))
ax.set_yticks(range(9), [f"(u={u}, v={v})" for u in range(3) for v in range(3)])
ax.set_xticks(range(16), [f"{r},{c}" for r in range(4) for c in range(4)], fontsize=9)
ax.set_xlabel("output pixel (i, j)")
ax.set_ylabel("kernel offset (c=0)")
ax.set_title("im2col matrix: one column per output pixel, one row per kernel entry")
fig.tight_layout()
plt.show()

# %% [markdown]
# The price of im2col is memory: `cols` is $k_h k_w = 9$ times the size of the input.
# The gain is that the arithmetic becomes one large matrix product, which NumPy
# (and CuPy, on the GPU) hands to an optimised BLAS.
#
# ## 4. Convolution, backward
#
# **With respect to the input.** The padded pixel $x_{\mathrm{pad}}[c, y, z]$ appears
# in output $\mathrm{out}[o, i, j]$ whenever $i + u = y$ and $j + v = z$ for some kernel
# offset, always with coefficient $w[o, c, u, v]$. The chain rule sums over every
# output it touches:
#
# $$\frac{\partial L}{\partial x_{\mathrm{pad}}[c, y, z]}
#   = \sum_{o}\sum_{u,v} w[o, c, u, v]\; dout[o,\, y-u,\, z-v],$$
#
# where terms with $(y-u, z-v)$ outside the output are absent. Then the padding is
# cut off: padded zeros are constants, not inputs. In matrix form this is the
# transpose of the forward product, $d\mathrm{cols} = w^\top\, dout$ (shape
# $C k_h k_w \times H_o W_o$: the gradient of every *copy* in `cols`), followed by
# **col2im**, which adds each copy's gradient back onto the pixel it was copied from.
# A pixel was copied up to 9 times, so it receives up to 9 contributions.
#
# **With respect to the weights and bias.** $w[o, c, u, v]$ multiplies
# $x_{\mathrm{pad}}[c, i+u, j+v]$ in every output pixel $(i, j)$ of channel $o$, and
# $b[o]$ enters each of them with coefficient 1:
#
# $$\frac{\partial L}{\partial w[o, c, u, v]} = \sum_{i,j} dout[o, i, j]\;
#   x_{\mathrm{pad}}[c, i+u, j+v]
#   \quad\Longleftrightarrow\quad dw = dout\; \mathrm{cols}^\top, \qquad
#   \frac{\partial L}{\partial b[o]} = \sum_{i,j} dout[o, i, j].$$
#
# These are `scratchnst.network.layers.conv2d_backward_input` and
# `scratchnst.network.layers.conv2d_backward_weights` (both at once:
# `scratchnst.network.layers.conv2d_backward`). Style transfer only ever needs the first:
# the network's weights stay fixed and only the image moves.
#
# In the worked example, put $dout = 1$ at the single output pixel $(1, 2)$ and zero
# elsewhere. The gradient with respect to $x$ must then be the kernel itself, placed
# on that pixel's window: $+1$ at $x[1,2]$ and $-1$ at $x[1,1]$.

# %%
dout = np.zeros((1, 4, 4))
dout[0, 1, 2] = 1.0
dx = layers.conv2d_backward_input(dout, cache)
dw, db = layers.conv2d_backward_weights(dout, cache)
print("dx[0] =\n", dx[0])
print("dw[0, 0] = the window of x_pad around pixel (1, 2) =\n", dw[0, 0], "\ndb =", db)

# %% [markdown]
# ## 5. Checking a gradient with finite differences
#
# A hand-derived gradient is easy to get almost right. The test is to compare it
# with a numerical estimate, one input entry at a time, using the **central
# difference**
#
# $$\frac{\partial L}{\partial x_k} \approx \frac{L(x + h e_k) - L(x - h e_k)}{2h},
#   \qquad L(x) = \sum_m dout_m\, f(x)_m .$$
#
# Its truncation error is $O(h^2)$ (the $f''$ terms cancel) and its rounding error
# is $O(\varepsilon |L| / h)$, so in float64 ($\varepsilon \approx 10^{-16}$) a step
# $h = 10^{-5}$ gives about ten correct digits. In float32 ($\varepsilon \approx 10^{-7}$)
# you would get two or three, which is why every check here runs in **float64**.
# Choosing $L = \sum dout \cdot f(x)$ with a *random* `dout` makes the estimate
# exactly what `op_backward(dout, cache)` returns.
#
# * `scratchnst.network.gradcheck.numerical_vjp(f, x, dout)` computes that estimate (two
#   evaluations of $f$ per entry of $x$, so only for small arrays);
# * `scratchnst.network.gradcheck.rel_error(a, b)` reports
#   $\max|a - b| \,/\, \max(\max|a|, \max|b|)$, an error relative to the size of the
#   gradient;
# * `scratchnst.network.gradcheck.check_vjp(f, x, dout, dx)` does both.
#
# As a rule of thumb in float64: below $10^{-8}$ the gradient is right; around
# $10^{-2}$ or more it is wrong; in between, look for kinks (next sections).

# %%
C, H, W, O = 3, 7, 6, 4  # odd, unequal sizes catch transposed axes that squares would hide
x = rng.standard_normal((C, H, W))
w = rng.standard_normal((O, C, 3, 3))
b = rng.standard_normal(O)
out, cache = layers.conv2d_forward(x, w, b, pad=1)
dout = rng.standard_normal(out.shape)
dx, dw, db = layers.conv2d_backward(dout, cache)

checks = {
    "conv dx": gradcheck.check_vjp(lambda z: layers.conv2d_forward(z, w, b, pad=1)[0], x, dout, dx),
    "conv dw": gradcheck.check_vjp(lambda z: layers.conv2d_forward(x, z, b, pad=1)[0], w, dout, dw),
    "conv db": gradcheck.check_vjp(lambda z: layers.conv2d_forward(x, w, z, pad=1)[0], b, dout, db),
}
for name, err in checks.items():
    print(f"{name}: relative error {err:.1e}")

# %% [markdown]
# ### The backward of a convolution is a convolution
#
# Substitute $u' = k_h - 1 - u$, $v' = k_w - 1 - v$ in the formula for
# $\partial L/\partial x$. It becomes a forward convolution of $dout$ (padded with
# $k_h - 1 - p$ zeros) with the kernel **flipped** in both spatial axes and with its
# two channel axes **swapped**:
#
# $$dx = \mathrm{conv}\big(dout,\; w'\big), \qquad w'[c, o, u', v'] = w[o, c, k_h-1-u', k_w-1-v'],
#   \qquad \text{padding } k_h - 1 - p .$$
#
# Let us confirm it, and then make the classic mistake of forgetting the flip. Our
# random $3\times 3$ kernel is not symmetric, so the mistake changes the numbers, and
# the gradient checker reports it at once.

# %%
def conv_backward_as_conv(dout, w, pad, flip=True):
    """dL/dx of a stride-1 convolution, computed as a forward convolution of dout."""
    O, C, kh, kw = w.shape
    k = w[:, :, ::-1, ::-1] if flip else w  # flip rows and columns (or, wrongly, not)
    k = np.ascontiguousarray(k.transpose(1, 0, 2, 3))  # (C, O, kh, kw): swap channel axes
    return layers.conv2d_forward(dout, k, np.zeros(C), pad=kh - 1 - pad)[0]


dx_conv = conv_backward_as_conv(dout, w, pad=1)
dx_wrong = conv_backward_as_conv(dout, w, pad=1, flip=False)
f = lambda z: layers.conv2d_forward(z, w, b, pad=1)[0]  # noqa: E731
print(f"flipped kernel vs conv2d_backward_input: rel error {gradcheck.rel_error(dx_conv, dx):.1e}")
print(f"flipped kernel vs finite differences:    rel error {gradcheck.check_vjp(f, x, dout, dx_conv):.1e}")
print(f"NO flip (wrong) vs finite differences:   rel error {gradcheck.check_vjp(f, x, dout, dx_wrong):.1e}  <- caught")

# %% [markdown]
# ## 6. ReLU
#
# $\mathrm{relu}(x) = \max(x, 0)$ elementwise, so each output depends on one input,
# the Jacobian is diagonal, and
#
# $$\frac{\partial L}{\partial x} = dout \odot [x > 0].$$
#
# The gradient passes where the unit was active and is blocked where it was not. At
# $x = 0$ the function has a kink and no derivative; `scratchnst.network.layers.relu_backward`
# takes it to be 0, as PyTorch does. Because $\mathrm{out} > 0$ exactly where
# $x > 0$, the forward output is all the cache the backward needs
# (`scratchnst.network.layers.relu_forward` returns it as the cache).
#
# A finite difference straddling the kink would be wrong by up to 50%, so the check
# draws inputs at least $0.1 \gg h$ away from 0.

# %%
x = rng.standard_normal((3, 5, 4))
x = np.where(np.abs(x) < 0.1, 0.5, x)  # keep every entry clear of the kink at 0
out, cache = layers.relu_forward(x)
dout = rng.standard_normal(x.shape)
dx = layers.relu_backward(dout, cache)
err = gradcheck.check_vjp(lambda z: layers.relu_forward(z)[0], x, dout, dx)
print(f"relu dx: relative error {err:.1e};  fraction of gradient blocked: {np.mean(dx == 0):.2f}")

# %% [markdown]
# ## 7. Max pooling
#
# VGG19's pools take the maximum of each non-overlapping $2\times 2$ window (stride 2):
#
# $$\mathrm{out}[c, i, j] = \max_{0 \le u, v < s} x[c,\, s i + u,\, s j + v], \qquad
#   H_o = \lfloor H / s \rfloor,\; W_o = \lfloor W / s \rfloor .$$
#
# **Odd sizes are floored**, as in Caffe's and PyTorch's VGG: the last row or column
# that does not fill a window is dropped, so $5\times 5 \to 2\times 2$.
#
# Within a window the maximum is a copy of one entry $k^\ast$, so
# $\partial\,\mathrm{out}/\partial x_k = [k = k^\ast]$: **the whole gradient goes to
# the winner** and every other entry, and every dropped row and column, gets zero.
#
# $$\frac{\partial L}{\partial x[c, si+u, sj+v]} = dout[c, i, j]\,\big[(u, v) = k^\ast(c, i, j)\big].$$
#
# **Ties**: when two entries share the maximum, max is not differentiable there.
# `scratchnst.network.layers.max_pool_forward` stores `argmax` of each window, which returns
# the *first* maximum in row-major order $(0,0), (0,1), (1,0), (1,1)$, and
# `scratchnst.network.layers.max_pool_backward` routes the gradient there, as PyTorch does.
#
# A worked example on a $5 \times 5$ input: the bottom-left window holds a tie (two
# 9s), and the last row and column are dropped by the floor.

# %%
x = np.array([[1, 3, 2, 0, 7],
              [4, 2, 1, 8, 7],
              [9, 5, 6, 6, 7],
              [2, 9, 6, 5, 7],
              [7, 7, 7, 7, 7]], dtype=float)[None]  # (1, 5, 5)
out, cache = layers.max_pool_forward(x, size=2)
dx = layers.max_pool_backward(np.array([[[10.0, 20.0], [30.0, 40.0]]]), cache)
print("out =\n", out[0])
print("argmax within each window (0..3, row-major) =\n", cache.argmax[0])
print("dx for dout = [[10, 20], [30, 40]] =\n", dx[0])

# %% [markdown]
# The window at rows 2–3, columns 0–1 holds $9, 5, 2, 9$: the first 9 (offset 0)
# takes the 30. The window at rows 2–3, columns 2–3 holds $6, 6, 6, 5$: the first 6
# takes the 40. Row 4 and column 4 are never read, so their gradient is 0.
#
# The finite difference disagrees *at a tie*, and it is instructive to see why:
# raising either tied entry by $h$ raises the max by $h$, while lowering it leaves the
# max at the other tied value. The central difference therefore gives each tied entry
# $\tfrac{1}{2}$ of the gradient. Neither answer is "wrong" (the function has no
# derivative there); they are different one-sided choices. So the real check uses
# distinct random values (ties have probability zero), spaced further apart than $h$.

# %%
dout = np.array([[[10.0, 20.0], [30.0, 40.0]]])
num = gradcheck.numerical_vjp(lambda z: layers.max_pool_forward(z, 2)[0], x.copy(), dout)
print("finite differences at the ties =\n", num[0])

x = rng.permutation(7 * 9 * 2).reshape(2, 7, 9) * 0.1 + 0.01 * rng.standard_normal((2, 7, 9))  # distinct, gaps ~0.1
out, cache = layers.max_pool_forward(x, 2)  # (2, 3, 4): odd sizes floored
dout = rng.standard_normal(out.shape)
dx = layers.max_pool_backward(dout, cache)
err = gradcheck.check_vjp(lambda z: layers.max_pool_forward(z, 2)[0], x, dout, dx)
print(f"max pool {x.shape} -> {out.shape}: dx relative error {err:.1e}")

# %% [markdown]
# ## 8. Average pooling
#
# Gatys et al. replace VGG's max pools by average pools (`load_vgg19(pooling="avg")`),
# reporting slightly smoother results. The window mean
#
# $$\mathrm{out}[c, i, j] = \frac{1}{s^2}\sum_{u,v} x[c, si+u, sj+v]
#   \quad\Longrightarrow\quad
#   \frac{\partial L}{\partial x[c, si+u, sj+v]} = \frac{dout[c, i, j]}{s^2}$$
#
# spreads the gradient evenly over the window (`scratchnst.network.layers.avg_pool_forward`,
# `scratchnst.network.layers.avg_pool_backward`); floored rows and columns get zero again.
# Average pooling is linear, so it has no kinks and the check needs no care. Forgetting
# the $1/s^2$ is the second deliberate mistake: it makes the gradient 4 times too
# large, and the relative error, $|4g - g| / |4g| = 0.75$, says so.

# %%
x = rng.standard_normal((2, 7, 9))
out, cache = layers.avg_pool_forward(x, 2)
dout = rng.standard_normal(out.shape)
dx = layers.avg_pool_backward(dout, cache)
f = lambda z: layers.avg_pool_forward(z, 2)[0]  # noqa: E731
print(f"avg pool dx: relative error {gradcheck.check_vjp(f, x, dout, dx):.1e}")
dx_wrong = dx * 4  # the backward without the 1/s^2
print(f"avg pool without 1/s^2 (wrong): relative error {gradcheck.check_vjp(f, x, dout, dx_wrong):.2f}  <- caught")

# %% [markdown]
# ## 9. The whole of VGG19: one directional derivative
#
# `scratchnst.VGG19.forward` (in `scratchnst/network/vgg.py`) chains these ops: 16
# convolutions, each followed by a ReLU, and 5 pools. `backward` walks their caches
# in reverse, calling each op's backward. By default the network runs the faster
# versions in `scratchnst.network.fast` (Winograd's convolution, which needs fewer
# multiplications, and the same im2col product done a band of rows at a time, with
# the input gradient computed as the flipped-kernel convolution of section 4), each
# tested against `scratchnst.network.layers`;
# `scratchnst.load_vgg19(conv="im2col")` runs exactly the functions of this notebook.
# We check three: the reference `im2col`, the banded `gemm`, and the default `winograd`.
#
# Checking the network entry by entry would need two full forward passes per pixel,
# thousands of them. Instead, check it along one random direction $v$ (Chainer's
# `check_backward`):
#
# $$\frac{d}{dt} L(x + t v)\Big|_{t=0} = \langle \nabla L(x), v \rangle
#   \approx \frac{L(x + h v) - L(x - h v)}{2h}.$$
#
# One scalar finite difference, two forward passes. If the backward of any layer were
# wrong, the two sides would differ (a wrong gradient that happened to be orthogonal
# to a random $v$ is a probability-zero accident).
# `scratchnst.network.gradcheck.check_directional(loss, x, grad)` draws $v$ and returns the
# relative error with both numbers.
#
# The loss is a random linear function of activations at several depths,
# $L = \sum_l \langle g_l, a_l(x)\rangle$, so that every part of the backward pass
# (including several gradients entering at once) is exercised. The input is a real
# photo, in float64.

# %%
rgb = load_image(bundled_image("chelsea"), long_side=VGG_SIDE)
names = ["relu1_1", "relu2_2", "pool3", "relu4_2", "relu5_1"]
nets = {conv: scratchnst.load_vgg19(dtype="float64", conv=conv) for conv in ("im2col", "gemm", "winograd")}
print("default convolution of load_vgg19():", scratchnst.load_vgg19().conv)
net64 = nets["im2col"]
x = net64.preprocess(rgb)  # (3, H, W) float64, the network's input space
acts = net64.forward(x, names)
g = {n: rng.standard_normal(a.shape) for n, a in acts.items()}
print("input", x.shape, "->", ", ".join(f"{n} {a.shape}" for n, a in acts.items()))
steps = net64.last_steps()  # the layers this forward ran, in order (read-only)
print(f"the forward pass runs {len(steps)} layers, {steps[0].name} to {steps[-1].name}")

for conv, net in nets.items():
    def loss(z, net=net):
        a = net.forward(z, names)
        return sum(np.sum(g[n] * a[n]) for n in names)

    t0 = time.perf_counter()
    net.forward(x, names)
    grad = net.backward(g)  # right after the forward whose gradient we want
    for h in (1e-4, 1e-5, 1e-6):
        err, analytic, numeric = gradcheck.check_directional(loss, x, grad, seed=1, h=h)
        print(f"conv={conv:8s} h={h:.0e}: <grad, v> = {analytic:.10e}   finite difference = {numeric:.10e}"
              f"   relative error {err:.1e}")
    print(f"  ({time.perf_counter() - t0:.1f} s)")

# %% [markdown]
# With $h = 10^{-5}$ the two sides agree to the digits the relative errors above print
# (about $10^{-8}$ or better), for all three implementations, through every layer the pass
# ran. The step $h$ matters: at $h = 10^{-4}$ the error can jump, and at $h = 10^{-6}$
# rounding starts to show. Appendix A, at the end of this notebook, explains why (near-ties
# in the max pools) and shows the same check catching a backward pass that is wrong in
# one place only.
#
# ## Summary
#
# * Convolution: $\mathrm{out} = w\,\mathrm{cols} + b$ via im2col. Its backward is
#   $d\mathrm{cols} = w^\top dout$ followed by col2im for the input, and
#   $dw = dout\,\mathrm{cols}^\top$, $db = \sum dout$ for the parameters. The input
#   gradient is itself a convolution with the flipped, channel-swapped kernel.
# * ReLU passes the gradient where the input was positive: $dx = dout \odot [x>0]$.
# * Max pooling sends each window's gradient to its (first) maximum; average pooling
#   spreads $dout/s^2$ over the window; both floor odd sizes and give dropped pixels 0.
# * Central differences in float64 check a backward pass to about $10^{-10}$;
#   `numerical_vjp` entry by entry for small ops, `check_directional` along one random
#   direction for the whole network. Wrong gradients show up as errors of order 1.
# * Kinks (ReLU at 0, ties in max pooling) are where finite differences and analytic
#   gradients legitimately disagree; keep check inputs further than the step from them
#   (and the step small: a photo has near-ties in its max pools).
#
# Next, tutorial 03 puts a loss on top of these layers: the content cost.
#
# ## Exercises
#
# **0. Write it yourself: `relu_backward`.** Fill in the function below from its docstring
# (without looking at section 6 or `scratchnst/network/layers.py`), then run the check cell:
# it compares your gradient with central differences (`gradcheck.check_vjp`), as section 5
# did, and says "correct" below $10^{-7}$. Until you fill it in, it says "not implemented yet".
# An answer is in `tutorials/solutions.py`; the check itself is in `tutorials/exercises.py`
# (and `tests/test_exercises.py` makes sure it rejects wrong answers).

# %%
from exercises import check_exercise  # tutorials/exercises.py  # noqa: E402


def relu_backward(dout, x):
    """Backward pass of relu(x) = max(x, 0).

    Parameters
    ----------
    dout : ndarray (C, H, W), dL/d out
    x : ndarray (C, H, W), the ReLU's input

    Returns
    -------
    dx : ndarray (C, H, W), dL/dx; take the derivative at x = 0 to be 0.
    """
    raise NotImplementedError  # your code here: one line


# %%
check_exercise("relu_backward", relu_backward)

# %% [markdown]
# 1. Write a naive convolution with four nested loops over $(o, i, j)$ and the
#    window, and compare it with `scratchnst.network.layers.conv2d_forward` on random inputs.
#    How much slower is it on a $64\times 64\times 64$ input?
# 2. Add a `stride` to the convolution. How do the output size and the backward
#    formula change? (Hint: $dout$ gets zeros inserted between its entries.)
# 3. Run `check_vjp` on `relu_forward` with inputs drawn *without* keeping them away
#    from 0, but with some entries exactly $\pm h/2$. Which entries disagree, and by how
#    much?
# 4. Repeat the whole-network check with `scratchnst.load_vgg19(dtype="float32")`.
#    How many digits agree now, and which step $h$ gives the best agreement?
# 5. Max pooling's backward could route a tie's gradient to the *last* maximum, or
#    split it evenly. Would style transfer results change? Why are ties rare on real
#    images but common after a ReLU?

# %% [markdown]
# ## Appendix A. Why the step matters: near-ties in max pooling
#
# Section 9's check agreed best at $h = 10^{-5}$. The reason is again a kink. The input is in
# pixel units (values up to about 150), and activations change by tens of units per
# unit step along $v$; a max-pool window whose two largest entries differ by less
# than that times $h$ swaps its winner between $x - hv$ and $x + hv$, and the finite
# difference then averages two different slopes. With $h = 10^{-4}$ a photo has a
# fair chance of such a near-tie somewhere among its thousands of windows; when it
# does, the error jumps to $10^{-4}$ or worse. At $h = 10^{-6}$ rounding error
# ($\varepsilon |L| / h$) starts to show instead. The next cell looks for windows that
# swap winners at each step size.

# %%
def swapped_windows(net, x, v, h):
    """Max-pool windows whose winner differs between x - h v and x + h v.

    Reads the argmax kept in each scratchnst.network.layers.PoolCache (the conv="im2col"
    network's pools) through ``net.last_steps()``, the read-only record of the last forward pass.
    """
    found = []
    net.forward(x - h * v, ["pool5"] if min(x.shape[1:]) >= 32 else ["pool4"])
    before = {s.name: np.array(s.cache.argmax) for s in net.last_steps() if s.name.startswith("pool")}
    net.forward(x + h * v, list(before)[-1:])
    for s in net.last_steps():
        if s.name.startswith("pool"):
            for ch, i, j in zip(*np.nonzero(before[s.name] != s.cache.argmax)):
                found.append((s.name, int(ch), int(i), int(j)))
    return found


v = np.random.default_rng(1).standard_normal(x.shape)  # the direction check_directional(seed=1) uses
for h in (1e-4, 1e-5, 1e-6):
    found = swapped_windows(net64, x, v, h)
    print(f"h={h:.0e}: {len(found)} window(s) swap their maximum", found[:3])
if swapped_windows(net64, x, v, 1e-4):
    n, ch, i, j = swapped_windows(net64, x, v, 1e-4)[0]  # the ReLU before the pool holds its window
    prev = scratchnst.LAYERS[scratchnst.LAYERS.index(n) - 1]
    a = net64.forward(x, [prev])[prev]
    print(f"that {n} window, read from {prev} channel {ch} at x:\n", np.array2string(a[ch, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2], precision=5))

# %% [markdown]
# ## Appendix B. A gradient wrong in one place only
#
# `net.backward` is a short loop: walk the steps of the last forward pass in reverse, add each
# requested layer's own gradient as you pass it, and call each step's backward. Written out
# with `net.last_steps()`, it lets us break one step on purpose, say the first ReLU passing
# everything through, and watch the directional check fail clearly:

# %%
def backward_walk(net, grads, broken=None):
    """What net.backward does (for the reference ops), optionally with one layer's backward replaced by the identity."""
    steps = net.last_steps()  # (Step(name, backward, cache, shape, overwrites), ...) of the last forward
    deepest = max(k for k, s in enumerate(steps) if s.name in grads)
    d = None
    for step in reversed(steps[: deepest + 1]):
        if step.name in grads:
            d = grads[step.name] if d is None else d + grads[step.name]
        backward = (lambda dout, cache: dout) if step.name == broken else step.backward  # identity: wrong
        d = backward(d, step.cache)
    return d


acts = net64.forward(x, names)
walked = backward_walk(net64, g)
print(f"backward_walk vs net.backward: relative error {gradcheck.rel_error(walked, net64.backward(g)):.1e}")
bad = backward_walk(net64, g, broken="relu1_1")  # the ReLU mask dropped


def loss(z):
    a = net64.forward(z, names)
    return sum(np.sum(g[n] * a[n]) for n in names)


err, analytic, numeric = gradcheck.check_directional(loss, x, bad, seed=1, h=1e-5)
print(f"ReLU mask dropped at relu1_1: <grad, v> = {analytic:.6e}, finite difference = {numeric:.6e}, "
      f"relative error {err:.1e}  <- caught")
