"""Plots a marketer wants from an evaluation: pacing, channel mix and ROI through the day."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from envs.errors import InputError
from envs.io import atomic_write
from envs.scenario import KNOWN_CHANNELS
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
    """Every strategy on shared axes: cumulative spend against the budget, ROI so far
    against the target, the score (% of the oracle's when ``per_strategy`` holds it), and
    the first strategy's spend per channel per hour. Written atomically, in the format the
    extension names (:data:`PLOT_FORMATS`)."""
    fmt = plot_format(Path(path))
    oracle = per_strategy.get("oracle")
    atomic_write(Path(path), strategy_figure_writer(per_strategy, title, fmt, oracle))


def strategy_figure_writer(
    per_strategy: dict[str, list[EpisodeResult]],
    title: str,
    fmt: str = "png",
    oracle: list[EpisodeResult] | None = None,
) -> Callable[[Path], None]:
    """A function that draws :func:`plot_strategies`'s figure into a given file in image
    format ``fmt`` (``png``, ``svg`` or ``pdf``), for :class:`envs.io.OutputSet` (the
    figure is drawn when the function is called; the temporary file's name says nothing
    of the format, so it is given here)."""
    return lambda tmp: _draw(per_strategy, tmp, title, fmt, oracle)


#: Fixed colours, so that a channel or a strategy looks the same in every figure.
CHANNEL_COLOURS = {name: f"C{i}" for i, name in enumerate(KNOWN_CHANNELS)}
STRATEGY_COLOURS = {
    name: f"C{i}"
    for i, name in enumerate(
        ("ppo-mpc", "mpc", "proportional", "pid", "online-lp", "even", "oracle")
    )
}


def _draw(
    per_strategy: dict[str, list[EpisodeResult]],
    path: Path,
    title: str,
    fmt: str = "png",
    oracle: list[EpisodeResult] | None = None,
) -> None:
    """One figure read in ten seconds: every strategy on shared axes (cumulative spend
    against the budget, ROI so far against the target), the share of the oracle's score
    with the share of days that missed the ROI target, and the first strategy's spend per
    channel and hour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_strategy)
    first = per_strategy[names[0]][0]
    budget, target = first.budget, first.roi_target
    episodes = len(per_strategy[names[0]])
    fig, ((ax_spend, ax_roi), (ax_score, ax_mix)) = plt.subplots(2, 2, figsize=(13, 8.5))
    # Strategies without a fixed colour take the next free ones, in order of appearance.
    others = [n for n in names if n not in STRATEGY_COLOURS]
    colours = {n: f"C{len(STRATEGY_COLOURS) + others.index(n)}" for n in others}
    colours.update(STRATEGY_COLOURS)

    def colour(name: str) -> str:
        return colours[name]

    for name in names:
        spend = _mean_trace(per_strategy[name], "spend").sum(axis=1)
        gmv = _mean_trace(per_strategy[name], "gmv").sum(axis=1)
        hours = np.arange(1, len(spend) + 1)
        cum_spend, cum_gmv = np.cumsum(spend), np.cumsum(gmv)
        ax_spend.plot(hours, cum_spend, color=colour(name), label=name)
        roi = np.divide(cum_gmv, cum_spend, out=np.full_like(cum_gmv, np.nan), where=cum_spend > 0)
        ax_roi.plot(hours, roi, color=colour(name), label=name)
    ax_spend.axhline(budget, color="black", linestyle="--", label=f"budget {budget:,.0f}")
    ax_spend.set(
        title="cumulative spend", xlabel="campaign hour", ylabel="spend (yuan, mean per day)"
    )
    ax_spend.legend(loc="upper left", fontsize=8)
    ax_roi.axhline(target, color="black", linestyle="--", label=f"ROI target {target:g}")
    ax_roi.set(title="ROI so far (GMV / spend)", xlabel="campaign hour", ylabel="ROI")
    ax_roi.legend(loc="upper right", fontsize=8)

    scores = [float(np.mean([e.score for e in per_strategy[n]])) for n in names]
    missed = [float(np.mean([e.roi_missed for e in per_strategy[n]])) for n in names]
    if oracle:
        reference = float(np.mean([e.score for e in oracle]))
        heights = [100.0 * s / reference if reference > 0 else 0.0 for s in scores]
        ax_score.set(ylabel="% of the oracle's mean score", title="score against the oracle")
    else:
        heights = scores
        ax_score.set(ylabel="mean score (yuan)", title="score")
    labels = [
        f"{n}\nROI missed\n{100 * m:.0f}% of days" for n, m in zip(names, missed, strict=True)
    ]
    bars = ax_score.bar(labels, heights, color=[colour(n) for n in names])
    for bar in bars:
        ax_score.annotate(
            f"{bar.get_height():,.1f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax_score.set_ylim(0, max(heights + [1.0]) * 1.15)
    ax_score.tick_params(axis="x", labelsize=7)

    mix = _mean_trace(per_strategy[names[0]], "spend")
    hours = np.arange(1, len(mix) + 1)
    bottom = np.zeros(len(mix))
    channels = [c for c in KNOWN_CHANNELS if any(a.endswith("/" + c) for a in first.arm_names)]
    for channel in channels:
        cols = [i for i, arm in enumerate(first.arm_names) if arm.endswith("/" + channel)]
        values = mix[:, cols].sum(axis=1)
        ax_mix.bar(hours, values, bottom=bottom, color=CHANNEL_COLOURS[channel], label=channel)
        bottom += values
    ax_mix.set(
        title=f"{names[0]}: spend per channel per hour",
        xlabel="campaign hour",
        ylabel="spend (yuan, mean per day)",
    )
    ax_mix.legend(loc="upper left", fontsize=8, ncol=2)

    fig.suptitle(f"{title}; {episodes} episode{'s' if episodes != 1 else ''} per strategy")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    try:
        fig.savefig(path, format=fmt, dpi=90)
    finally:
        plt.close(fig)
