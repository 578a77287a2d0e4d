# %% [markdown]
# # 01 · What a ConvNet sees: layers 1 to 5, from edges and colours to textures and objects
#
# Style transfer (Gatys et al. 2016) never trains anything. It borrows a network trained
# to recognise objects, VGG19, and uses what its layers compute as a description of an
# image: deep layers for *what is where* (content), correlations between channels for
# *texture* (style). Before building that, we look at what those layers actually respond to.
#
# **What you will do**
#
# * list VGG19's layers with their output shapes and **receptive fields**, computed from the
#   architecture, and see what the bundled weights are (8-bit, k-means quantised);
# * look at **feature maps** of one photo at `relu1_1`, `relu2_1`, ..., `relu5_1`;
# * look at the 64 kernels of the first layer: **colour** units and **edge** units;
# * find the **image patches that excite single units most** among the bundled images, for
#   units of all five blocks, each cropped to the unit's receptive field;
# * synthesise the input each unit likes best (**activation maximisation**).
#
# Rebuilding an image from one layer's activations, and a texture from Gram matrices, is the
# subject of tutorials 03 and 04.
#
# **What you will learn**: how receptive fields grow through convolutions and pools; that the
# first block responds to colours and oriented contrast (edges), the middle blocks to textures
# and repeated patterns, the last blocks to object parts; and why that makes a deep layer a good
# content layer and statistics of several layers a good style descriptor.
#
# **What you need**: Python, NumPy and matplotlib; no deep-learning framework (VGG19 and
# its backward pass are written in NumPy, tutorials 02–04). Open these beside the notebook:
#
# * `scratchnst/network/vgg.py` — `VGG19.forward`, `VGG19.backward`;
# * `scratchnst/network/architecture.py` — `LAYERS`; `scratchnst/files/weights.py` — `load_vgg19`;
# * `scratchnst/inside/receptive_fields.py` — `receptive_fields`, `receptive_field_box`;
# * `scratchnst/inside/patches.py` — `top_channels`, `top_patches`;
# * `scratchnst/inside/figures.py` — `feature_grid_figure`, `patches_figure`, `units_figure`;
# * `scratchnst/inside/synthesis.py` — `maximize_unit`.
#
# The first code cell picks sizes: `SCRATCHNST_TUTORIAL_SIZE=small` (CI) runs in under a
# minute with tiny images and a few steps; `full` (the default) takes several minutes on a CPU.

# %%
import io
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, Markdown, display

import scratchnst
from scratchnst.files import images
from scratchnst.files.images import image_files
from scratchnst.inside.figures import feature_grid_figure, patches_figure, units_figure
from scratchnst.inside.patches import top_channels, top_patches
from scratchnst.inside.receptive_fields import receptive_fields
from scratchnst.inside.synthesis import layer_channels, maximize_unit

SIZE = os.environ.get("SCRATCHNST_TUTORIAL_SIZE", "full")
if SIZE == "small":   # CI: seconds, not pictures
    MAP_PX, PATCH_PX, N_IMAGES, MAX_STEPS = 48, 48, 3, 2
    MAX_PX = {1: 16, 2: 16, 3: 16, 4: 16, 5: 16}
else:
    MAP_PX, PATCH_PX, N_IMAGES, MAX_STEPS = 128, 160, None, 30
    MAX_PX = {1: 32, 2: 48, 3: 64, 4: 64, 5: 64}   # each at least a receptive field or so, on a CPU budget
BLOCKS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]

plt.rcParams.update({"font.size": 11, "axes.titlesize": 11, "figure.dpi": 100})


def show(fig):
    """Display a figure from scratchnst.inside.figures (a plain matplotlib Figure, not a pyplot one) as a PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    display(Image(buf.getvalue()))


net = scratchnst.load_vgg19()                     # bundled weights, float32, NumPy
paths = image_files()[:N_IMAGES]                  # the bundled example images
print(f"size={SIZE}; {len(paths)} images: {', '.join(p.stem for p in paths)}")

# %% [markdown]
# ## 1. The architecture, and how far each unit sees
#
# VGG19's feature part is 16 convolutions, all $3\times3$ with padding 1 and stride 1, each
# followed by a ReLU, in five blocks separated by $2\times2$ max pools with stride 2.
# Channels double from block to block (64, 128, 256, 512, 512) while each pool halves the
# height and width. Layers are named `conv<block>_<index>`, `relu<block>_<index>`, `pool<block>`.
#
# **Receptive field.** A unit of a layer depends on a square window of the input, of side
# $r$. Track three numbers from the input ($r = 1$, jump $j = 1$ pixel between neighbouring
# units): a $k\times k$ operation with stride $s$ maps
#
# $$ r' = r + (k-1)\,j, \qquad j' = j\,s . $$
#
# A $3\times3$ convolution adds $2j$ to $r$; a $2\times2$ pool adds $j$ and doubles $j$.
# So in block 1 ($j = 1$) each convolution adds 2 pixels, in block 5 ($j = 16$) each adds 32:
# the field grows slowly at first and then fast. `scratchnst.inside.receptive_fields.receptive_fields`
# does exactly this walk; the table below uses it, with shapes for a $224\times224$ input
# (the size VGG19 was trained at) and the parameter count $9 C_\text{in} C_\text{out} + C_\text{out}$
# of each convolution.

# %%
rf = receptive_fields()
rows = ["| layer | output (C, h, w) at 224 px | receptive field (px) | jump (px) | parameters |",
        "|---|---|---|---|---|"]
h = w = 224
c = 3
total = 0
for name in scratchnst.LAYERS:
    if name.startswith("conv"):
        c_in, c = c, layer_channels(name)
        params = 9 * c_in * c + c
        total += params
    elif name.startswith("pool"):
        h, w, params = h // 2, w // 2, 0
    else:
        params = 0
    bold = "**" if name in BLOCKS or name == "relu4_2" else ""
    rows.append(f"| {bold}{name}{bold} | ({c}, {h}, {w}) | {rf[name].size} | {rf[name].jump} | "
                f"{f'{params:,}' if params else ''} |")
rows.append(f"| total | | | | {total:,} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The layers in bold are the ones style transfer reads: `relu1_1` to `relu5_1` for style,
# `relu4_2` for content. Their receptive fields are 3, 10, 24, 68 and 156 pixels. A `relu1_1`
# unit sees a $3\times3$ patch, enough for one colour and one step of contrast; a `relu5_1`
# unit sees most of a 224 px image (with zero padding around it). Note that this is the
# *theoretical* field: the pixels that *can* influence the unit. In practice the centre of
# the window matters far more than its edges.
#
# **The bundled weights are quantised.** `weights/vgg19.h5` (20 MB) holds VGG19's ImageNet
# weights (Simonyan and Zisserman, via the Keras conversion of the original Caffe model) with
# each convolution's kernel **quantised to 8 bits by k-means**: every weight of a layer is
# replaced by the nearest of 256 values (that layer's codebook), stored as a uint8 code; the
# biases are kept in float32. The full-precision kernels would take four times the space (see
# `weights/README.md` for the provenance). What that changes: each weight moves by at most half
# the gap between neighbouring codebook values, so the activations, and which patch excites a
# unit most, are close to but not exactly those of the original VGG19; the unit numbers and
# the figures below may differ slightly from other copies of VGG19. What it does not change is
# the architecture, or the kind of features each block computes. The cell below counts the
# distinct kernel values per layer and the largest such move relative to the layer's weights;
# to compare with full-precision weights, convert them with `scratchnst convert` and pass the
# file to `load_vgg19`.

# %%
for name, (kernel, _) in net.params.items():
    values = np.unique(np.asarray(kernel))                    # the codebook actually used
    half_gap = np.diff(values).max() / 2 if values.size > 1 else 0.0
    print(f"{name}: {values.size} distinct kernel values; largest move {half_gap / np.abs(values).max():.1e} "
          f"of the largest weight")

# %% [markdown]
#
# ## 2. Feature maps, block by block
#
# `net.forward(x, layers)` returns each requested layer's activations as a $(C, h, w)$ array
# (`scratchnst/network/vgg.py`). Below, for the astronaut photo, the most active channels (largest
# mean, `top_channels`) of the first layer of each block, each map scaled to its own range
# (`feature_grid_figure`): dark is zero, bright is that map's maximum.

# %%
photo = images.load_image(images.bundled_image("astronaut"), long_side=MAP_PX)   # (H, W, 3) uint8
acts = net.forward(net.preprocess(photo), BLOCKS)                                # {layer: (C, h, w)}
for layer in BLOCKS:
    a = acts[layer]
    show(feature_grid_figure(a, layer, top_channels(a, 8), image=photo))

# %% [markdown]
# What the maps show, block by block (at 128 px; the block's map size in each title):
#
# * **`relu1_1`** (128x128, field 3 px): each map is the photo seen through a colour and
#   brightness filter. Several channels (29, 32, 16, 59) light up the orange suit and nothing
#   else; channel 61 the white areas (the helmet's visor rim, the shuttle, the bright
#   background); channel 31 the darker, bluish-grey parts; channel 52 the folds and seams of
#   the suit, i.e. local contrast. The maps are still pictures: you can read the image in them.
# * **`relu2_1`** (64x64, field 10 px): thin, sparse outlines. The maps are dark except along
#   edges (the visor rim, the shuttle, the suit's folds), each channel preferring some
#   orientations and some colour pairs; channel 32 picks out the flag's stripes.
# * **`relu3_1`** (32x32, field 24 px): short oriented strokes and textured patches: channels
#   60 and 69 fire along diagonal structures, channel 4 on the curved helmet ring, others on
#   the textured suit. Channel 211 fires only along the image border: it has learned where
#   the zero padding starts, a reminder that the network sees the frame too.
# * **`relu4_1`** (16x16, field 68 px): the image is no longer readable in the maps. Activity
#   is blobby and sparse; the two strongest channels (264 and 105) peak at the same place,
#   the round mission badge on the suit.
# * **`relu5_1`** (8x8, field 156 px): a few cells per map. The most active channels (35, 46,
#   174, 434) concentrate on the face and the neck ring, the part of the picture a
#   classifier of objects would care about.
#
# ## 3. The first layer's kernels: colour units and edge units
#
# A `relu1_1` unit is one $3\times3\times3$ kernel of `conv1_1` followed by a ReLU, so we can
# simply look at the kernels, drawn as tiny RGB images (each scaled to its own range, mid-grey
# for zero). A kernel that is roughly constant over its $3\times3$ window responds to a
# **colour**, wherever it is; a kernel with opposite signs on two sides responds to a
# **contrast** between them, an **edge**. The cell measures the spatial part of each kernel
# (its norm after removing the mean over the window, relative to its whole norm) and marks the
# units used below: unit 22, a colour unit; units 58 and 10, edge units.

# %%
kernel = np.asarray(net.params["conv1_1"][0])                 # (64, 3, 3, 3): (unit, colour, row, column)
spatial = kernel - kernel.mean(axis=(2, 3), keepdims=True)
edge_ness = np.linalg.norm(spatial.reshape(64, -1), axis=1) / np.linalg.norm(kernel.reshape(64, -1), axis=1)
fig, axes = plt.subplots(4, 16, figsize=(13, 3.8), layout="constrained")
for u, ax in enumerate(axes.flat):
    k = kernel[u].transpose(1, 2, 0)                          # (3, 3, colour)
    k = k[..., ::-1] if net.prep.channel_order == "BGR" else k  # show in RGB
    ax.imshow(0.5 + 0.5 * k / np.abs(k).max())
    ax.set_title(f"{u}", fontsize=8, color="crimson" if u in (22, 58, 10) else "black")
    ax.set_axis_off()
fig.suptitle("conv1_1 kernels (red numbers: units shown below)", fontsize=11)
plt.show()
for u in (22, 58, 10):
    print(f"conv1_1 unit {u}: spatial part {edge_ness[u]:.2f} of the kernel's norm "
          f"({'edge' if edge_ness[u] > 0.5 else 'colour'} unit)")
print(f"{np.sum(edge_ness > 0.5)} of the 64 kernels are mostly spatial (edge units), "
      f"{np.sum(edge_ness <= 0.5)} mostly colour")

# %% [markdown]
# Most of the first layer's units are edge detectors of some orientation and colour pair, and
# the rest respond mostly to colour (the counts are printed; the threshold 0.5 is a rough one). Unit 58's kernel is
# dark on the left and light on the right, a **vertical** edge; unit 10's light on top and dark
# below, a **horizontal** edge (the course's names: the orientation of the edge, not of the
# change across it).
#
# ## 4. The patches that excite a unit most
#
# A feature map shows where *one* image excites a unit. To see what the unit is *for*,
# look across many images: run every bundled image through the network, take the positions
# where the unit is largest (at most two per image, half a receptive field apart) and crop
# each to that unit's receptive field (`top_patches`, which uses `receptive_field_box` for the
# crop; Zeiler and Fergus 2014 did this over ImageNet). Ten images are a small sample, so a
# unit's favourite here is what it likes *among these*; the pattern is still clear.
#
# The units below come from all five blocks. Under the figures, the cell prints for each unit
# the images in the order of their best patch, and how much more the unit fires on its favourite
# image than on any other.

# %%
PATCH_UNITS = [("relu1_1", 22), ("relu1_1", 58), ("relu1_1", 10), ("relu2_1", 18), ("relu3_1", 122),
               ("relu3_1", 187), ("relu4_1", 430), ("relu5_1", 85), ("relu5_1", 159)]
t0 = time.perf_counter()
ranking = {}
for layer, unit in PATCH_UNITS:
    patches = top_patches(net, layer, unit, paths, k=8, per_image=2, long_side=PATCH_PX)
    show(patches_figure(patches, layer, unit))
    best = {}
    for patch in patches:                                   # strongest first: keep each image's best
        best.setdefault(patch.source.split(".")[0], patch.score)
    ranking[layer, unit] = best
print(f"{len(PATCH_UNITS)} units over {len(paths)} images in {time.perf_counter() - t0:.0f} s")
for (layer, unit), best in ranking.items():
    names = list(best) + ["-"]                              # "-": no other image at all
    top, nxt = best[names[0]], best.get(names[1], 0.0)
    ratio = top / nxt if nxt > 0 else float("inf")           # a unit silent on every other image
    print(f"{layer} unit {unit}: images by best patch: {', '.join(names[:-1])};  "
          f"ratio: {ratio:.1f} (best {names[0]} over next {names[1]})")

# %% [markdown]
# What the patches show:
#
# * **`relu1_1` unit 22** is a *colour* unit: all eight $3\times3$ patches are flat, saturated
#   blue (the Starry Night's sky, Earth from space, the water lilies, the sky behind Grace
#   Hopper). **Units 58 and 10** are *edge* units, as their kernels said: unit 58's patches are
#   dark on the left and light on the right (a vertical edge), unit 10's light above and dark
#   below (a horizontal edge), in whatever colours the images offer.
# * **`relu2_1` unit 18** (10 px patches) fires on boundaries between a dark region on the left
#   and a light one on the right, straight or slanted: the edge of unit 58, now over a larger
#   window and along curves (the sleeve against the shirt in Grace Hopper's portrait, the
#   helmet's rim, Earth's limb against black space).
# * **`relu3_1` unit 122** (24 px patches) prefers corners and points on a contrasting ground:
#   the white stars on Grace Hopper's flag, the angular shapes of Kandinsky's *Composition
#   VII*, the curling tips of the Great Wave. **Unit 187** prefers a bright diagonal stroke
#   running from top left to bottom right: the rim of the astronaut's helmet, the orange
#   stripes of the Scream's sky, the bands of the Great Wave.
# * **`relu4_1` unit 430** (68 px patches) prefers bold, rounded shapes with sharp light-dark
#   outlines (Grace Hopper's tie and collar, the flag's stars, the Great Wave's crest, Earth's
#   disc): a part-sized pattern, no longer a single edge, not yet an object.
# * **`relu5_1`** patches are almost the whole image (156 px of a 160 px image). **Unit 85** fires
#   on the astronaut several times more than on any other image (the printed ratio); the
#   runners-up, in the printed order, are a mix of paintings and photos with no common object,
#   so among these ten images the unit is an astronaut detector and nothing else. **Unit 159**
#   fires most on the cat, Chelsea, again by a clear margin (its ratio is printed too): an
#   object-level unit. Its second crop of the cat is again centred on the eye and the fur.
#
# ## 5. What a unit wants: activation maximisation
#
# Instead of searching a set of images, we can *make* the image a unit likes most: start
# from grey noise and do gradient **ascent** on the unit's mean activation
# $\bar a_u(x) = \frac{1}{hw}\sum_{i,j} a_{u,ij}(x)$. The gradient $\partial \bar a_u / \partial x$
# is one backward pass with $\frac{1}{hw}$ at every position of channel $u$ and zero elsewhere.
# Plain ascent finds high-frequency patterns no photo contains, so `maximize_unit`
# (`scratchnst/inside/synthesis.py`) regularises it as Yosinski et al. (2015) did:
#
# * **jitter**: shift the image by a few random pixels before each step, so the pattern cannot
#   depend on exact alignment;
# * **blur** every few steps and **L2 decay** towards the mean pixel: suppress frequencies and
#   regions the unit does not need;
# * a **normalised step**, $x \leftarrow x + \eta\, g / \overline{|g|}$, so the step size is in pixel
#   values whatever the layer's gradient scale, and **clipping** to valid pixels.
#
# For a `reluX_Y` layer it ascends on `convX_Y`, the ReLU's input: same maximiser (ReLU is
# monotone), but no zero gradient where the unit is off. Because we maximise the *mean*
# over positions, the result is a texture tiled with the unit's favourite pattern.

# %%
MAX_UNITS = {"relu1_1": [12, 22, 33, 5], "relu2_1": [120, 51, 18, 103], "relu3_1": [122, 187, 5, 60],
             "relu4_1": [321, 400, 1, 430], "relu5_1": [85, 159, 1, 48]}
t0 = time.perf_counter()
for b, (layer, units) in enumerate(MAX_UNITS.items(), start=1):
    tiles = []
    for u in units:
        x, history = maximize_unit(net, layer, u, size=MAX_PX[b], steps=MAX_STEPS, seed=0)
        tiles.append(net.deprocess(x))
    show(units_figure(tiles, layer, units, subtitle=f"({MAX_PX[b]} px, {MAX_STEPS} steps)"))
print(f"{sum(map(len, MAX_UNITS.values()))} units in {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# What the synthesised images show:
#
# * **`relu1_1`**: flat colours (green, blue, magenta, violet). A $3\times3$ filter averaged
#   over all positions responds to the image's colour; the blur removes the 1-pixel patterns
#   an edge filter would need, so the edge units of section 3 would come out flat too
#   (exercise 2). Unit 22 comes out the same blue as its top patches.
# * **`relu2_1`**: the first textures: fine stripes at one orientation (units 18, 103), a
#   magenta honeycomb (120), a grey-green fine grid (51). The period is a few pixels, the
#   size of the receptive field.
# * **`relu3_1`**: larger, crisper textures: a honeycomb of rounded cells (122, the unit of
#   stars and corners above: blobs with contrasting borders), diagonal bead-chains running
#   top left to bottom right (187, exactly the orientation of its top patches), interleaved
#   green and magenta strokes (5), orange-blue diagonal stripes (60).
# * **`relu4_1`**: textures made of parts: wavy bands studded with coloured dots (321, 1), rows
#   of small coloured blobs (400), overlapping rounded scales (430).
# * **`relu5_1`**: the structures are larger than any of the earlier periods, curved tubes and
#   folds (85, 1), furry striped curves (159, the cat unit), and for unit 48 ringed dark-centred
#   spots that look like eyes. They are not objects (a 64 px image is smaller than one unit's
#   receptive field, and ascent without a natural-image prior does not produce whole objects),
#   but they are the object *parts* the layer is built from.
#
# ## 6. What comes next
#
# What a layer *keeps* of an image is the next question, and tutorials 03 and 04 answer it by
# optimisation: 03 rebuilds a photo from one layer's activations (shallow layers give the pixels
# back, deep ones only the layout), and 04 synthesises textures from the Gram matrices of more
# and more layers, the style rows of Gatys et al.'s Figure 1.
#
# ## Summary
#
# * The bundled weights are VGG19's, with each layer's kernels k-means quantised to 256 values:
#   close to, not identical with, the original network.
# * VGG19 is five blocks of $3\times3$ convolutions and ReLUs separated by $2\times2$ pools;
#   receptive fields grow as $r' = r + (k-1)j$, from 3 px at `relu1_1` to 156 px at `relu5_1`
#   (`scratchnst.inside.receptive_fields.receptive_fields`).
# * What the units respond to, in the figures above: block 1 to **colours and edges** in
#   $3\times3$ windows (visible in the kernels themselves); block 2 to **longer edges and fine
#   stripes**; block 3 to **oriented
#   strokes, corners and small repeated patterns**; block 4 to **textures made of parts**
#   (dots on bands, scales); block 5 to **object parts and whole objects** (a unit that fires
#   mainly on the cat, one on the astronaut, eye-like spots).
# * Deep layers know *what is where*, shallow ones the pixels and textures: tutorials 03 and
#   04 turn that into the content and style costs.
#
# ## Exercises
#
# 1. Take another unit from the `relu4_1` row of section 5 and show its `top_patches`. Do the
#    patches agree with the synthesised image?
# 2. Run `maximize_unit` for one `relu1_1` unit with `blur_sigma=0` and `decay=0`. What do the
#    regularisers suppress? Then use `where="centre"` for a `relu3_1` unit: what appears
#    around the receptive field, and why is it grey?
# 3. Verify one entry of the receptive-field table by hand, then empirically: feed a random
#    image, backpropagate a gradient of 1 at one `relu3_1` unit (`net.backward`) and measure
#    the extent of the nonzero input gradient.
# 4. Repeat the activation maximisation of section 5 with `net.pooling = "avg"` (Gatys et al.
#    used average pooling for synthesis). Which blocks change most?
# 5. Synthesise a texture from the Grams of *several* layers at once (`scratchnst.Objective`
#    with `alpha=0`, starting from noise). How does it compare with the single-layer ones?
