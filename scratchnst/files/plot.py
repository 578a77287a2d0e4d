"""The loss curve of a run: total, content, style and TV terms per iteration."""

from pathlib import Path

from scratchnst.files.atomic import atomic_path


def plot_losses(history, path, title="scratchnst: loss per iteration"):
    """Write a log-scale plot of the weighted loss terms to ``path`` (atomically).

    ``history``: {"total": [...], "content": [...], "style": [...], "tv": [...],
    "level": [...]} as :func:`scratchnst.transfer.loop.stylize` records it. Dashed
    vertical lines mark the start of each coarse-to-fine level.
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed

    fig = Figure(figsize=(7, 4.2), dpi=120)
    ax = fig.add_subplot()
    steps = range(1, len(history["total"]) + 1)
    styles = {"total": ("k", 2.0), "content": ("tab:blue", 1.2), "style": ("tab:red", 1.2), "tv": ("tab:green", 1.2)}
    for key, (colour, width) in styles.items():
        values = history.get(key, [])
        if values and max(values) > 0:
            ax.plot(steps, values, color=colour, lw=width, label=key if key == "total" else f"{key} (weighted)")
    levels = history.get("level", [])
    for i in range(1, len(levels)):
        if levels[i] != levels[i - 1]:
            ax.axvline(i + 0.5, color="0.6", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    return path
