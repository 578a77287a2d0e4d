"""Every tutorial notebook runs top to bottom at the small size (CI's fast mode), and says what its prose says.

The committed notebooks keep the outputs of a full-size run (tutorials/build.py);
this test executes a copy at SCRATCHNST_TUTORIAL_SIZE=small and then reads the
executed copy: no cell has an error output, every cell that shows a figure produced
an image, and the numbers the prose relies on (gradient checks passing, wrong
gradients caught, losses falling, the receptive fields quoted) are printed by a cell
and fall in range. The ranges hold at the small size, whose numbers differ from the
committed full-size ones.
"""

import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))

# A figure cell calls plt.show() or tutorial 01's show(fig) helper (a PNG through IPython's display),
# at the start of a line: ``def show(fig):`` is not a call.
FIGURE_CALL = re.compile(r"^\s*(plt\.show\(\)|show\()", re.MULTILINE)
NUMBER = r"([-+]?\d[\d.]*(?:e[-+]?\d+)?)"


def printed_text(nb):
    """Everything a reader sees as text: stdout, and the text or Markdown of displayed values."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.output_type == "stream":
                parts.append(out.text)
            elif "data" in out:
                parts.append(out.data.get("text/markdown") or out.data.get("text/plain", ""))
    return "\n".join(parts)


def numbers(text, pattern, count=None):
    """The floats captured by ``pattern`` (``{n}`` stands for a number), every match; at least one must be printed."""
    found = [[float(g) for g in m.groups()] for m in re.finditer(pattern.replace("{n}", NUMBER), text)]
    assert found, f"not printed by any cell: {pattern!r}"
    if count is not None:
        assert len(found) == count, (pattern, found)
    return [f[0] if len(f) == 1 else f for f in found]


def check_01(text):
    # "Their receptive fields are 3, 10, 24, 68 and 156 pixels": the Markdown table, any input size.
    fields = [numbers(text, rf"\| \*\*relu{b}_1\*\* \| \([\d, ]+\) \| {{n}} \|", 1)[0] for b in range(1, 6)]
    assert fields == [3, 10, 24, 68, 156]
    # "quantised to 8 bits by k-means": at most 256 values per layer, each weight moved by a fraction of the largest
    for distinct, move in numbers(text, r"conv\d_\d: {n} distinct kernel values; largest move {n} of the largest", 16):
        assert 1 < distinct <= 256 and 0 < move < 0.5
    # "unit 22, a colour unit; units 58 and 10, edge units"; "Most of the first layer's units are edge detectors"
    assert numbers(text, r"conv1_1 unit 22: spatial part {n}", 1)[0] < 0.5
    assert min(numbers(text, r"conv1_1 unit (?:58|10): spatial part {n}", 2)) > 0.5
    edge, colour = numbers(text, r"{n} of the 64 kernels are mostly spatial \(edge units\), {n} mostly colour", 1)[0]
    assert edge + colour == 64 and edge > colour
    # top patches for units of all five blocks, each with the ratio the prose reads
    ranked = re.findall(r"relu(\d)_1 unit (\d+): images by best patch: (\w+).*;  ratio: (inf|[\d.]+)", text)
    assert len(ranked) == 9 and {int(b) for b, *_ in ranked} == {1, 2, 3, 4, 5}, ranked
    assert all(float(r) >= 1 for *_, r in ranked)  # the best image first
    assert [first for b, u, first, _ in ranked if (b, u) == ("5", "85")] == ["astronaut"]  # "fires on the astronaut"


def check_02(text):
    assert max(numbers(text, r"conv d[xwb]: relative error {n}", 3)) < 1e-8  # "below 1e-8 the gradient is right"
    assert numbers(text, r"NO flip \(wrong\) vs finite differences: +rel error {n}", 1)[0] > 1e-2
    assert numbers(text, r"relu dx: relative error {n}", 1)[0] < 1e-8
    assert numbers(text, r"avg pool dx: relative error {n}", 1)[0] < 1e-8
    assert numbers(text, r"avg pool without 1/s\^2 \(wrong\): relative error {n}", 1)[0] == 0.75  # |4g - g| / |4g|
    assert "default convolution of load_vgg19(): winograd" in text  # "By default the network runs ... Winograd's"
    assert numbers(text, r"the forward pass runs {n} layers, conv1_1 to relu5_1", 1)[0] == 30
    # "With h = 1e-5 the two sides agree ... for all three implementations"
    at_1e5 = re.findall(r"conv=(\w+) +h=1e-05: .*relative error " + NUMBER, text)
    assert sorted(c for c, _ in at_1e5) == ["gemm", "im2col", "winograd"], at_1e5
    assert max(float(e) for _, e in at_1e5) < 1e-7
    assert numbers(text, r"backward_walk vs net.backward: relative error {n}", 1)[0] < 1e-12
    assert numbers(text, r"ReLU mask dropped at relu1_1: .* relative error {n}", 1)[0] > 1e-2
    assert "relu_backward: not implemented yet" in text  # the exercise's stub, checked gracefully


def check_03(text):
    assert max(numbers(text, r"(?:gatys|course) +relative error {n}", 2)) < 1e-8
    assert numbers(text, r"wrong +relative error {n}", 1)[0] == 0.5  # forgot the 2: half the gradient
    assert numbers(text, r"through VGG19: .* relative error {n}", 1)[0] < 1e-6
    assert numbers(text, r"Gatys eq\. 2: max difference {n}", 1)[0] == 0
    for before, after in numbers(text, r"relu\d_\d +activation .*loss {n} -> {n}", 5):
        assert after < before
    # the lecture's 1/2 and the assignment's 1/(4 N M) differ by the fixed factor 2 N M
    factor, ratio = numbers(text, r"2 N_l M_l = {n};  J_gatys / J_course = {n}", 1)[0]
    assert abs(ratio - factor) <= 1e-4 * factor
    assert "content_cost: not implemented yet" in text


def check_04(text):
    assert numbers(text, r"max \|G - G_shuffled\| / max \|G\| = {n}", 1)[0] < 1e-5  # "up to the rounding"
    assert numbers(text, r"gram_backward: +relative error {n}", 1)[0] < 1e-8
    assert numbers(text, r"2 dG F \(wrong here\): +relative error {n}", 1)[0] > 1e-2
    assert numbers(text, r"style_layer_cost: +relative error {n}", 1)[0] < 1e-8
    assert numbers(text, r"Gatys eq\. 6: relative error {n}", 1)[0] < 1e-5
    assert numbers(text, r"style loss through VGG19: .* relative error {n}", 1)[0] < 1e-5
    assert numbers(text, r"relu5_1 / relu1_1 = {n}", 1)[0] > 10  # "The constants grow by orders of magnitude"
    for before, after in numbers(text, r"up to relu\d_1: loss {n} -> {n}", 5):
        assert after < before
    assert "gram_backward: not implemented yet" in text and "style_layer_cost: not implemented yet" in text


def check_05(text):
    # the one-page version computes the package's loss and gradient
    loss_diff, grad_err = numbers(
        text, r"one page vs Objective: loss relative difference {n}, gradient relative error {n}", 1)[0]
    assert loss_diff < 1e-4 and grad_err < 1e-4
    numbers(text, r"speed-up {n}x", 1)
    assert numbers(text, r"'content': '{n}'", 1)[0] == 0  # "At the content photo itself J_content = 0"
    shares = dict(zip(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
                      numbers(text, r"style relu\d_1: \S+ +share {n}", 5)))
    assert shares["relu4_1"] > 0.9  # "one layer, relu4_1, carries nearly all of the style loss"
    assert shares["relu1_1"] < 1e-3  # "relu1_1 a vanishing part of it"
    plain = numbers(text, r"plain VGG19: share relu1_1 = {n}, share relu2_1 = {n}, share relu3_1 = {n}, "
                          r"share relu4_1 = {n}, share relu5_1 = {n}", 1)[0]
    assert max(plain) > 0.9 and min(plain) < 1e-4  # "span many orders of magnitude"
    normalized = re.findall(r"normalised VGG19: (share .*)", text)
    if normalized:  # "the shares come within about an order of magnitude of each other"
        values = [float(v) for v in re.findall(r"share relu\d_1 = " + NUMBER, normalized[0])]
        assert len(values) == 5 and min(values) > 1e-3 * max(values), values
    errors = dict((float(h), float(e)) for h, e in re.findall(
        r"h=(\S+): <grad, v> = \S+ +finite difference = \S+ +relative error = " + NUMBER, text))
    assert errors[1e-5] < 1e-6  # "it falls as h shrinks"
    assert numbers(text, r"cubic_min on a cubic: t = {n}", 1)[0] == 3.0
    J0 = numbers(text, r"J\(content image\) = {n}", 1)[0]
    assert max(numbers(text, r"(?:Adam|L-BFGS).* final loss {n}", 2)) < J0  # both optimisers lower J
    assert numbers(text, r"L-BFGS's first iteration: {n} evaluations", 1)[0] >= 1
    numbers(text, r"final loss L-BFGS / Adam: {n}", 1)
    numbers(text, r"from noise: beta J_style / alpha J_content = {n} after iteration 1", 1)
    # the course's recipe from noise: every optimiser lowers the loss
    recipe = numbers(text, r"from noise, (?:gradient descent|adam|lbfgs) *: loss \S+ -> \S+ in \d+ iterations "
                           r"\(final / initial {n}\)", 3)
    assert max(recipe) < 1
    # section 3c, the recipe from noise against the start from the photo; its bars (loss within 10%, speckle
    # within 1.5x the style's) hold at the full size only, so here: both runs finished, the printed numbers agree
    recipe_runs = re.findall(r"recipe from (noise|the photo) *: avg pooling, levels \[([\d, ]+)\] px, "
                             r"iterations per level: \d+; final loss " + NUMBER, text)
    assert [r[0] for r in recipe_runs] == ["noise", "the photo"], recipe_runs
    assert len(recipe_runs[0][1].split(",")) >= 2  # from noise: coarse to fine, at the small size too
    J_noise, J_photo = (float(r[2]) for r in recipe_runs)
    assert J_noise > 0 and J_photo > 0
    ratio = numbers(text, r"final loss from noise / from the photo: {n}", 1)[0]
    assert abs(ratio - J_noise / J_photo) <= 1e-2 * ratio
    S_style, S_noise, _, S_photo, _ = numbers(
        text, r"style {n}, from noise {n} \({n}x the style's\), from the photo {n} \({n}x\)", 1)[0]
    assert all(0 < S < 1 for S in (S_style, S_noise, S_photo))
    numbers(text, r"final loss: one level {n}, two levels {n}", 1)
    assert "two_loop: not implemented yet" in text


def check_06(text):
    # "The activations differ by relative amounts of order 1e-7 to 1e-6"
    assert max(numbers(text, r"relu\d_\d: max \|a32 - a64\| / max \|a64\| = {n}", 6)) < 1e-5
    # Printed, with no range: where a near-tie flips between float32 and float64 the gradient goes elsewhere
    # (the committed full-size run prints 5.5e-2 here); the next line counts the flips.
    numbers(text, r"input gradient: +max rel\. difference {n}", 1)
    flips, swaps = numbers(text, r"ReLU outputs zero in one precision and positive in the other: {n};  "
                                 r"max-pool windows with another winner: {n}", 1)[0]
    assert flips >= 0 and swaps >= 0
    assert "'winograd'" in text  # the timed convolution is named
    assert all(r > 0 for r in numbers(text, r"numpy float64 / float32 at \d+ px: {n}"))
    assert "to_numpy(x) is x: True" in text


CHECKS = {"01": check_01, "02": check_02, "03": check_03, "04": check_04, "05": check_05, "06": check_06}


def test_there_are_tutorials():
    assert len(NOTEBOOKS) >= 6, [n.name for n in NOTEBOOKS]
    assert sorted(p.stem[:2] for p in NOTEBOOKS) == sorted(CHECKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_built_from_its_source(path):
    """The committed notebook's cells are those of tutorials/src/NN_*.py: it was rebuilt after the last edit."""
    sys.path.insert(0, str(TUTORIALS))
    try:
        from build import parse_percent
    finally:
        sys.path.remove(str(TUTORIALS))
    source = TUTORIALS / "src" / (path.stem + ".py")
    expected = [(c.cell_type, c.source) for c in parse_percent(source.read_text())]
    nb = nbformat.read(path, as_version=4)
    hint = f"rebuild it: python tutorials/build.py {path.stem[:2]}"
    assert [(c.cell_type, c.source) for c in nb.cells] == expected, hint


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("SCRATCHNST_TUTORIAL_SIZE", "small")
    # IPython's inline backend, as tutorials/build.py runs them: plt.show() leaves a PNG in the
    # cell's outputs (with MPLBACKEND=Agg it is a no-op and no figure is ever drawn).
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback

    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    errors = [(i, o.ename) for i, c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    figure_cells = [i for i, c in code if FIGURE_CALL.search(c.source)]
    assert figure_cells, "no figure cell found: has the notebook's way of showing figures changed?"
    blank = [i for i in figure_cells if not any("image/png" in o.get("data", {}) for o in nb.cells[i].outputs)]
    assert not blank, f"cells {blank} show a figure but produced no image"
    CHECKS[path.stem[:2]](printed_text(nb))
