"""Plots of a ``fedprivacy simulate`` report: test AUC and epsilon spent per round, as PNG files.

matplotlib is optional (``pip install 'fedprivacy[plot]'``) and imported only when a plot is drawn;
figures render on the Agg canvas directly, so no global backend is chosen for the caller's process.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["PLOT_HINT", "PlotsUnavailable", "write_plots", "plot_auc", "plot_epsilon"]

PLOT_HINT = "plots need matplotlib: pip install 'fedprivacy[plot]'"

# The --compare baselines: the per-round key in the report's rows, and the legend (the method's name
# in the report's comparison table).
_BASELINES = (
    ("plaintext_test_auc", "plaintext submodel FL"),
    ("fedavg_test_auc", "full-model FedAvg + secure aggregation"),
)


class PlotsUnavailable(ImportError):
    """matplotlib is not installed (or cannot be imported)."""


def _matplotlib() -> tuple[Any, Any, Any]:
    try:
        import matplotlib  # noqa: F401  (imported first: a missing package fails here)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise PlotsUnavailable(PLOT_HINT) from exc
    return Figure, FigureCanvasAgg, MaxNLocator


def _subtitle(report: dict) -> str:
    parts = [f"{report.get('clients', '?')} clients", f"d={report.get('dim', '?')}"]
    if report.get("dataset"):
        parts.append(str(report["dataset"]))
    if report.get("parameters"):
        parts.append("p=(" + ", ".join(str(v) for v in report["parameters"].values()) + ")")
    return ", ".join(parts)


def _figure(title: str, report: dict):
    Figure, FigureCanvasAgg, MaxNLocator = _matplotlib()
    figure = Figure(figsize=(7.0, 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(f"{title}\n{_subtitle(report)}", fontsize=10)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    return figure, axes


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def plot_auc(report: dict, path: str | Path) -> Path:
    """Test AUC per round (round 0: the initial model); with --compare also the two baselines."""
    rows = report["rounds"]
    figure, axes = _figure("Test AUC per round", report)
    rounds = [row["round"] for row in rows]
    axes.plot(rounds, [row["test_auc"] for row in rows], marker="o", linewidth=2,
              label="secure submodel FL (this library)")
    for key, name in _BASELINES:
        if any(key in row for row in rows):
            points = [(row["round"], row[key]) for row in rows if key in row]
            axes.plot(*zip(*points), marker=".", linestyle="--", label=name)
    axes.set_xlabel("round")
    axes.set_ylabel("test AUC")
    axes.legend(loc="best", fontsize=8)
    path = Path(path)
    figure.savefig(path)
    return path


def plot_epsilon(report: dict, path: str | Path) -> Path:
    """Per-index epsilon spent after each round, over the clients' ledgers (max, median and the
    min-max range), with epsilon_1 (one report) and epsilon_inf (what the spend never passes)."""
    rows = [row for row in report["rounds"] if "epsilon_spent_max" in row]
    figure, axes = _figure("Per-index epsilon spent, from the clients' ledgers", report)
    rounds = [row["round"] for row in rows]
    if rows and all("epsilon_spent_min" in row for row in rows):
        axes.fill_between(rounds, [row["epsilon_spent_min"] for row in rows],
                          [row["epsilon_spent_max"] for row in rows], alpha=0.2, label="range over clients")
    axes.plot(rounds, [row["epsilon_spent_max"] for row in rows], marker="o", linewidth=2, label="max over clients")
    if rows and all("epsilon_spent_median" in row for row in rows):
        axes.plot(rounds, [row["epsilon_spent_median"] for row in rows], marker=".", linestyle="--",
                  label="median over clients")
    if _finite(report.get("epsilon_inf")):
        axes.axhline(report["epsilon_inf"], color="tab:red", linestyle="-",
                     label=rf"$\varepsilon_\infty$ = {report['epsilon_inf']:.3g} (cap with the permanent memo)")
    if _finite(report.get("epsilon_1")):
        axes.axhline(report["epsilon_1"], color="tab:gray", linestyle=":",
                     label=rf"$\varepsilon_1$ = {report['epsilon_1']:.3g} (one report)")
    drawn = [row["epsilon_spent_max"] for row in rows] + [report.get(k) for k in ("epsilon_inf", "epsilon_1")]
    top = max([v for v in drawn if _finite(v)] + [0.0])
    axes.set_ylim(0, top * 1.15 if top > 0 else 1.0)  # room above the cap line
    axes.set_xlabel("round")
    axes.set_ylabel(r"epsilon spent (per index)")
    axes.legend(loc="lower right", fontsize=8)
    path = Path(path)
    figure.savefig(path)
    return path


def write_plots(report: dict, out_dir: str | Path) -> list[Path]:
    """``auc.png`` and ``epsilon.png`` in ``out_dir``; :class:`PlotsUnavailable` without matplotlib
    (raised before any file is written)."""
    _matplotlib()
    out_dir = Path(out_dir)
    return [plot_auc(report, out_dir / "auc.png"), plot_epsilon(report, out_dir / "epsilon.png")]
