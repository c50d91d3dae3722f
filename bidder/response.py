"""Response models: predicted spend and GMV of every arm as functions of its bid and spend.

The numpy market (:func:`envs.market.expected_response`) gives an arm's expected spend
and GMV for a bid in closed form. Raising the bid buys costlier impressions, so GMV is a
concave function of spend. The optimiser sees that function as a concave piecewise-linear
curve: a grid of bids per arm gives points ``(spend(b_j), gmv(b_j))``; piece ``j`` has
width ``spend(b_j) - spend(b_{j-1})`` and slope (marginal ROI) ``dGMV / dspend``.
:func:`gmv_of_spend` is the cvxpy twin of the numpy curve; a test checks they agree.

Distant hours are grouped into blocks whose lengths double (1, 1, 2, 4, 8, ... hours):
a block's curve is the sum of its hours' curves at a common bid, which is the optimal
split of a block's spend over its hours when value per impression is steady.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from envs.market import EpisodeMarket, creative_wear, expected_response


def period_sizes(horizon: int, blocks: bool = True) -> list[int]:
    """Planning periods covering ``horizon`` hours: 1, 1, 2, 4, 8, ... hours (the last one
    may be cut), or one period per hour when ``blocks`` is false."""
    if not blocks:
        return [1] * horizon
    sizes, covered, size = [], 0, 1
    while covered < horizon:
        sizes.append(min(size, horizon - covered))
        covered += sizes[-1]
        if len(sizes) >= 2:
            size *= 2
    return sizes


@dataclass(frozen=True)
class PiecewiseCurves:
    """Concave piecewise-linear GMV(spend) curves per arm and planning period.

    Attributes:
        widths: spend width of each piece, shape (K, periods, P).
        slopes: GMV per unit spend of each piece (marginal ROI), shape (K, periods, P).
        bids: the bid grid per arm in CPM, shape (K, P + 1); column 0 is a zero bid.
        hour0_spend, hour0_gmv: expected spend and GMV of the current hour at each grid
            bid, shape (K, P + 1), increasing in the bid.
    """

    widths: np.ndarray
    slopes: np.ndarray
    bids: np.ndarray
    hour0_spend: np.ndarray
    hour0_gmv: np.ndarray


def bid_grid(forecast: EpisodeMarket, bid_cap: np.ndarray, n_pieces: int) -> np.ndarray:
    """Per-arm geometric bid grid from where the arm wins almost nothing up to the cap."""
    low = (forecast.price_median * np.exp(-2.5 * forecast.price_sigma)).min(axis=0)
    low = np.minimum(low, bid_cap / 50.0)
    ramp = np.linspace(0.0, 1.0, n_pieces)
    grid = low[:, None] * (bid_cap / low)[:, None] ** ramp[None, :]
    return np.concatenate([np.zeros((len(bid_cap), 1)), grid], axis=1)


def build_curves(
    forecast: EpisodeMarket,
    bid_cap: np.ndarray,
    n_pieces: int,
    n_planning_periods: int,
    exposure: np.ndarray | None = None,
    blocks: bool = True,
) -> PiecewiseCurves:
    """Piecewise-linear curves of the forecast hours, grouped into planning periods.

    Periods beyond the forecast's hours get zero-width pieces, so a problem compiled for
    the whole campaign keeps its shape as the campaign runs out of hours.
    """
    bids = bid_grid(forecast, bid_cap, n_pieces)  # (K, P+1)
    wear = 1.0 if exposure is None else creative_wear(forecast, exposure)
    hours = forecast.horizon
    # Axes: (hour, grid point, arm).
    outcome = expected_response(
        forecast.traffic[:, None, :],
        forecast.price_median[:, None, :],
        forecast.price_sigma,
        (forecast.ctr * wear)[:, None, :],
        forecast.cvr[:, None, :],
        forecast.aov[:, None, :],
        forecast.saturation,
        bids.T[None, :, :],
    )
    spend, gmv = outcome.spend, outcome.gmv
    n_arms = len(bid_cap)
    period_spend = np.zeros((n_planning_periods, n_pieces + 1, n_arms))
    period_gmv = np.zeros_like(period_spend)
    start = 0
    for p, size in enumerate(period_sizes(hours, blocks)[:n_planning_periods]):
        period_spend[p] = spend[start:start + size].sum(axis=0)
        period_gmv[p] = gmv[start:start + size].sum(axis=0)
        start += size
    if start < hours:  # more hours than periods: the last period takes the rest
        period_spend[-1] += spend[start:].sum(axis=0)
        period_gmv[-1] += gmv[start:].sum(axis=0)
    widths = np.diff(period_spend, axis=1)
    gains = np.diff(period_gmv, axis=1)
    slopes = np.divide(gains, widths, out=np.zeros_like(gains), where=widths > 1e-12)
    return PiecewiseCurves(
        widths=np.maximum(widths, 0.0).transpose(2, 0, 1),
        slopes=np.maximum(slopes, 0.0).transpose(2, 0, 1),
        bids=bids,
        hour0_spend=spend[0].T,
        hour0_gmv=gmv[0].T,
    )


def spend_to_bid(curves: PiecewiseCurves, spend: np.ndarray) -> np.ndarray:
    """Invert each arm's current-hour spend(bid) curve: the bid expected to spend ``spend``.

    Interpolates log-linearly between grid bids (linearly below the first grid bid).
    """
    grid_spend, bids = curves.hour0_spend, curves.bids
    n_arms, n_points = grid_spend.shape
    target = np.clip(spend, 0.0, grid_spend[:, -1])
    upper = np.clip((grid_spend < target[:, None]).sum(axis=1), 1, n_points - 1)
    rows = np.arange(n_arms)
    s0, s1 = grid_spend[rows, upper - 1], grid_spend[rows, upper]
    b0, b1 = bids[rows, upper - 1], bids[rows, upper]
    frac = np.clip(np.divide(target - s0, s1 - s0, out=np.zeros(n_arms), where=s1 > s0), 0, 1)
    geometric = np.exp(np.log(np.maximum(b0, 1e-300)) * (1 - frac) + np.log(b1) * frac)
    return np.where(upper == 1, b1 * frac, geometric)


def gmv_of_spend(spend: cp.Expression, curve_spend: np.ndarray, curve_gmv: np.ndarray) -> cp.Expression:
    """cvxpy twin of one arm-hour's GMV(spend): the concave hull of the curve's points.

    ``min_j (gmv_j + slope_j (spend - spend_j))`` over the pieces is concave in ``spend``
    and equals the piecewise-linear interpolation on the curve's range.
    """
    widths = np.diff(curve_spend)
    keep = widths > 1e-12
    slopes = np.diff(curve_gmv)[keep] / widths[keep]
    return cp.min(curve_gmv[:-1][keep] + cp.multiply(slopes, spend - curve_spend[:-1][keep]))
