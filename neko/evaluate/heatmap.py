"""Expert-utilisation heatmaps from routing statistics given as plain data.

The MoE layer's statistics come as a JSON-able dict:

    {"tasks": [names], "num_layers": L, "num_experts": E,
     "counts": [task][layer][expert] token counts,
     "mean_gate_prob": [task][layer][expert] floats}   # optional

Counts are normalised per (task, layer) to the fraction of that task's tokens routed to each expert (a
token routed to k experts counts k times, so fractions are of routing assignments). The figure has one
panel per layer: rows are tasks, columns experts. Rendering uses matplotlib's Agg backend (no display).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neko.errors import NekoError
from neko.io import write_figure


def validate_routing_stats(stats: Any, where: str = "routing stats") -> dict[str, Any]:
    """Check the shape of routing statistics; errors are one line naming `where` and the field."""
    if not isinstance(stats, dict):
        raise NekoError(f"{where}: expected a JSON object, got {type(stats).__name__}")
    for name in ("tasks", "num_layers", "num_experts", "counts"):
        if name not in stats:
            raise NekoError(f"{where}: missing field '{name}'")
    tasks = stats["tasks"]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise NekoError(f"{where}: field 'tasks' must be a non-empty list of task names")
    for name in ("num_layers", "num_experts"):
        value = stats[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise NekoError(f"{where}: field '{name}' must be a positive integer")
    shape = (len(tasks), stats["num_layers"], stats["num_experts"])
    for name in ("counts", "mean_gate_prob"):
        if name not in stats:
            continue
        try:
            array = np.asarray(stats[name], dtype=float)
        except (TypeError, ValueError):
            raise NekoError(f"{where}: field '{name}' must be a nested list of numbers") from None
        if array.shape != shape:
            raise NekoError(
                f"{where}: field '{name}' has shape {list(array.shape)}, expected "
                f"[tasks={shape[0]}][layers={shape[1]}][experts={shape[2]}]"
            )
        if not np.isfinite(array).all() or (array < 0).any():
            raise NekoError(f"{where}: field '{name}' must hold finite, non-negative numbers")
    return stats


def expert_fractions(stats: dict[str, Any]) -> np.ndarray:
    """counts normalised over experts for each (task, layer); all-zero rows stay zero."""
    counts = np.asarray(validate_routing_stats(stats)["counts"], dtype=float)
    totals = counts.sum(axis=2, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def _plot_panels(values: np.ndarray, tasks: list[str], title: str, colorbar_label: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num_tasks, num_layers, num_experts = values.shape
    columns = min(num_layers, 4)
    rows = -(-num_layers // columns)
    panel_w = max(2.5, 0.45 * num_experts + 1.2)
    panel_h = max(1.8, 0.45 * num_tasks + 1.0)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(panel_w * columns + 1.2, panel_h * rows + 0.6),
        squeeze=False,
        constrained_layout=True,
    )
    vmax = float(values.max()) if values.size and values.max() > 0 else 1.0
    image = None
    annotate = num_experts <= 16 and num_tasks <= 10
    for layer in range(rows * columns):
        ax = axes[layer // columns][layer % columns]
        if layer >= num_layers:
            ax.axis("off")
            continue
        panel = values[:, layer, :]
        image = ax.imshow(panel, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xticks(range(num_experts), [str(e) for e in range(num_experts)], fontsize=7)
        ax.set_yticks(range(num_tasks), tasks, fontsize=8)
        ax.set_xlabel("expert", fontsize=8)
        if annotate:
            for t in range(num_tasks):
                for e in range(num_experts):
                    value = panel[t, e]
                    ax.text(
                        e,
                        t,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="black" if value > 0.6 * vmax else "white",
                    )
    fig.suptitle(title, fontsize=11)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label=colorbar_label)
    try:
        write_figure(path, fig, dpi=120)
    finally:
        plt.close(fig)
    return path


def plot_expert_utilization(stats: dict[str, Any], path: str | Path) -> Path:
    """PNG of the fraction of each task's tokens routed to each expert, one panel per layer."""
    fractions = expert_fractions(stats)
    return _plot_panels(
        fractions,
        list(stats["tasks"]),
        "Expert utilisation (fraction of a task's tokens)",
        "fraction of tokens",
        Path(path),
    )


def plot_gate_probability(stats: dict[str, Any], path: str | Path) -> Path:
    """PNG of the mean gate probability of each expert per task, one panel per layer."""
    validate_routing_stats(stats)
    if "mean_gate_prob" not in stats:
        raise NekoError("routing stats: no 'mean_gate_prob' to plot")
    values = np.asarray(stats["mean_gate_prob"], dtype=float)
    return _plot_panels(
        values, list(stats["tasks"]), "Mean gate probability", "mean gate probability", Path(path)
    )
