"""Plots a marketer wants from an evaluation: pacing, channel mix and ROI through the day."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from envs.errors import InputError
from envs.io import atomic_write
from policies.evaluate import EpisodeResult

#: Image formats a plot is written in, by the file's extension (none: PNG).
PLOT_FORMATS = {"": "png", ".png": "png", ".svg": "svg", ".pdf": "pdf"}


def plot_format(path: Path) -> str:
    """The image format a plot path names, or a one-line refusal naming the choices."""
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise InputError(
            f"{path}: a plot is written as PNG, SVG or PDF; end the file name in .png, .svg or .pdf"
        )
    return PLOT_FORMATS[suffix]


def _mean_trace(episodes: list[EpisodeResult], figure: str) -> np.ndarray:
    """Mean per-hour, per-arm figure over episodes (episodes that ended early pad with 0)."""
    horizon = max(len(e.trace[figure]) for e in episodes)
    stacked = np.zeros((len(episodes), horizon, episodes[0].trace[figure].shape[1]))
    for i, e in enumerate(episodes):
        stacked[i, : len(e.trace[figure])] = e.trace[figure]
    return stacked.mean(axis=0)


def plot_strategies(per_strategy: dict[str, list[EpisodeResult]], path: Path, title: str) -> None:
    """One row per strategy: cumulative spend against the budget, spend per channel per
    hour, and cumulative ROI against the target. Written atomically, in the format the
    extension names (:data:`PLOT_FORMATS`)."""
    fmt = plot_format(Path(path))
    atomic_write(Path(path), strategy_figure_writer(per_strategy, title, fmt))


def strategy_figure_writer(
    per_strategy: dict[str, list[EpisodeResult]], title: str, fmt: str = "png"
) -> Callable[[Path], None]:
    """A function that draws :func:`plot_strategies`'s figure into a given file in image
    format ``fmt`` (``png``, ``svg`` or ``pdf``), for :class:`envs.io.OutputSet` (the
    figure is drawn when the function is called; the temporary file's name says nothing
    of the format, so it is given here)."""
    return lambda tmp: _draw(per_strategy, tmp, title, fmt)


def _draw(
    per_strategy: dict[str, list[EpisodeResult]], path: Path, title: str, fmt: str = "png"
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_strategy)
    fig, axes = plt.subplots(len(names), 3, figsize=(15, 2.8 * len(names)), squeeze=False)
    first = per_strategy[names[0]][0]
    channels = sorted({arm.split("/")[1] for arm in first.arm_names})
    for row, name in zip(axes, names, strict=True):
        episodes = per_strategy[name]
        spend = _mean_trace(episodes, "spend")
        gmv = _mean_trace(episodes, "gmv")
        hours = np.arange(1, len(spend) + 1)
        budget, target = episodes[0].budget, episodes[0].roi_target

        row[0].plot(hours, np.cumsum(spend.sum(axis=1)), label="cumulative spend")
        row[0].axhline(budget, color="red", linestyle="--", label="budget")
        row[0].set_ylabel(name)
        row[0].set_title("spend vs budget" if row is axes[0] else "")

        bottom = np.zeros(len(spend))
        for channel in channels:
            cols = [i for i, arm in enumerate(first.arm_names) if arm.endswith("/" + channel)]
            values = spend[:, cols].sum(axis=1)
            row[1].bar(hours, values, bottom=bottom, label=channel)
            bottom += values
        row[1].set_title("spend per channel per hour" if row is axes[0] else "")

        cum_spend = np.cumsum(spend.sum(axis=1))
        cum_gmv = np.cumsum(gmv.sum(axis=1))
        roi = np.divide(cum_gmv, cum_spend, out=np.full_like(cum_gmv, np.nan), where=cum_spend > 0)
        row[2].plot(hours, roi, label="ROI so far")
        row[2].axhline(target, color="red", linestyle="--", label="ROI target")
        row[2].set_title("ROI through the day" if row is axes[0] else "")
    axes[0][0].legend(loc="upper left", fontsize=8)
    axes[0][1].legend(loc="upper left", fontsize=8, ncol=2)
    axes[0][2].legend(loc="upper right", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("campaign hour")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(path, format=fmt, dpi=90)
    finally:
        plt.close(fig)
