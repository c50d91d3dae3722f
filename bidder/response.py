"""Response models: predicted spend and GMV of every arm as functions of its bid and spend.

A response model (:class:`ResponseModel`) says what a bid is expected to buy: spend and GMV
per arm and hour of a forecast market. :class:`ParametricResponse` is the closed form of
the numpy market (:func:`envs.market.expected_response`, with the forecast's auction
rules when it carries them); the MPC bidder, the exact allocator and the nightly job take
any model. Raising the bid buys costlier impressions, so GMV is a
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
from typing import Protocol

import cvxpy as cp
import numpy as np

from envs.market import EpisodeMarket, creative_wear, expected_response


class ResponseModel(Protocol):
    """What bids are expected to buy in a forecast market."""

    def response(
        self, forecast: EpisodeMarket, bids: np.ndarray, ctr_wear: np.ndarray | float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected spend and GMV of ``bids`` (CPM) of shape (H, ..., K) in the forecast's
        first ``H`` hours; ``ctr_wear`` multiplies CTR per arm (creative wear)."""
        ...


class ParametricResponse:
    """The market's closed form on the forecast's parameters (second-price log-normal
    auctions, or the auction rules the forecast carries in ``mechanism``)."""

    name = "parametric"

    def response(
        self, forecast: EpisodeMarket, bids: np.ndarray, ctr_wear: np.ndarray | float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        bids = np.asarray(bids, dtype=float)
        hours = bids.shape[0]
        extra = (1,) * (bids.ndim - 2)

        def per_hour(values: np.ndarray) -> np.ndarray:
            return values[:hours].reshape((hours,) + extra + (values.shape[-1],))

        attributed = 1.0 if forecast.attribution is None else per_hour(forecast.attribution)
        out = expected_response(
            per_hour(forecast.traffic),
            per_hour(forecast.price_median),
            forecast.price_sigma,
            per_hour(forecast.ctr) * ctr_wear,
            per_hour(forecast.cvr),
            per_hour(forecast.aov),
            forecast.saturation,
            bids,
            forecast.mechanism,
            attributed,
        )
        return out.spend, out.gmv


#: The model every planner uses unless given another.
PARAMETRIC = ParametricResponse()


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
        bids: the bid grid in CPM, shape (K, periods, P + 1); column 0 is a zero bid.
        period_spend, period_gmv: expected spend and GMV of each period at each grid bid,
            shape (K, periods, P + 1), increasing in the bid.
    """

    widths: np.ndarray
    slopes: np.ndarray
    bids: np.ndarray
    period_spend: np.ndarray
    period_gmv: np.ndarray

    @property
    def hour0_spend(self) -> np.ndarray:
        return self.period_spend[:, 0, :]

    @property
    def hour0_gmv(self) -> np.ndarray:
        return self.period_gmv[:, 0, :]


#: Half-width (as a factor) of the fine part of a bid grid centred on a previous solution.
CENTRED_SPAN = 1.3


def bid_grid(
    forecast: EpisodeMarket,
    bid_cap: np.ndarray,
    n_pieces: int,
    n_planning_periods: int,
    centres: np.ndarray | None = None,
) -> np.ndarray:
    """Bid grids per arm and planning period, shape (K, periods, P + 1); column 0 is 0.

    Without ``centres`` the grid is geometric from where the arm wins almost nothing up
    to the cap. With ``centres`` (K, periods), typically the previous hour's solution, most
    points sit within a factor ``CENTRED_SPAN`` of the centre, where the new solution will
    be, plus coarse pieces down to almost nothing and up to the cap: the same number of
    pieces resolves the optimum several times more finely.
    """
    n_arms = len(bid_cap)
    low = (forecast.price_median * np.exp(-2.5 * forecast.price_sigma)).min(axis=0)
    low = np.minimum(low, bid_cap / 50.0)
    if centres is None:
        ramp = np.linspace(0.0, 1.0, n_pieces)
        grid = low[:, None] * (bid_cap / low)[:, None] ** ramp[None, :]
        grid = np.broadcast_to(grid[:, None, :], (n_arms, n_planning_periods, n_pieces))
    else:
        c = np.clip(centres, (low * CENTRED_SPAN)[:, None], (bid_cap / CENTRED_SPAN)[:, None])
        ramp = np.linspace(-1.0, 1.0, n_pieces - 2)
        inner = c[..., None] * CENTRED_SPAN**ramp
        floor = np.minimum(low[:, None], inner[..., 0] / 2.0)[..., None]
        grid = np.concatenate(
            [floor, inner, np.broadcast_to(bid_cap[:, None, None], floor.shape)], axis=-1
        )
    return np.concatenate([np.zeros((n_arms, n_planning_periods, 1)), grid], axis=-1)


def build_curves(
    forecast: EpisodeMarket,
    bid_cap: np.ndarray,
    n_pieces: int,
    n_planning_periods: int,
    exposure: np.ndarray | None = None,
    blocks: bool = True,
    centres: np.ndarray | None = None,
    model: ResponseModel = PARAMETRIC,
) -> PiecewiseCurves:
    """Piecewise-linear curves of the forecast hours, grouped into planning periods,
    from ``model``'s expected spend and GMV on a bid grid.

    Periods beyond the forecast's hours get zero-width pieces, so a problem compiled for
    the whole campaign keeps its shape as the campaign runs out of hours. A period's
    curve sums its hours' curves at a common bid.
    """
    bids = bid_grid(forecast, bid_cap, n_pieces, n_planning_periods, centres)  # (K, periods, P+1)
    wear = 1.0 if exposure is None else creative_wear(forecast, exposure)
    hours = forecast.horizon
    sizes = period_sizes(hours, blocks)
    period_of_hour = np.minimum(np.repeat(np.arange(len(sizes)), sizes), n_planning_periods - 1)
    # Axes: (hour, grid point, arm).
    spend, gmv = model.response(forecast, bids[:, period_of_hour, :].transpose(1, 2, 0), wear)
    n_arms = len(bid_cap)
    period_spend = np.zeros((n_planning_periods, n_pieces + 1, n_arms))
    period_gmv = np.zeros_like(period_spend)
    np.add.at(period_spend, period_of_hour, spend)
    np.add.at(period_gmv, period_of_hour, gmv)
    widths = np.diff(period_spend, axis=1)
    gains = np.diff(period_gmv, axis=1)
    slopes = np.divide(gains, widths, out=np.zeros_like(gains), where=widths > 1e-12)
    return PiecewiseCurves(
        widths=np.maximum(widths, 0.0).transpose(2, 0, 1),
        slopes=np.maximum(slopes, 0.0).transpose(2, 0, 1),
        bids=bids,
        period_spend=period_spend.transpose(2, 0, 1),
        period_gmv=period_gmv.transpose(2, 0, 1),
    )


def period_bids(curves: PiecewiseCurves, spend: np.ndarray) -> np.ndarray:
    """Invert every arm's and period's spend(bid) curve: the common bid that spends
    ``spend`` (K, periods). Log-linear between grid bids, linear below the first one."""
    grid_spend, bids = curves.period_spend, curves.bids
    n_points = grid_spend.shape[-1]
    target = np.clip(spend, 0.0, grid_spend[..., -1])
    upper = np.clip((grid_spend < target[..., None]).sum(axis=-1), 1, n_points - 1)[..., None]
    s0 = np.take_along_axis(grid_spend, upper - 1, -1)[..., 0]
    s1 = np.take_along_axis(grid_spend, upper, -1)[..., 0]
    b0 = np.take_along_axis(bids, upper - 1, -1)[..., 0]
    b1 = np.take_along_axis(bids, upper, -1)[..., 0]
    frac = np.clip(np.divide(target - s0, s1 - s0, out=np.zeros_like(s0), where=s1 > s0), 0, 1)
    geometric = np.exp(np.log(np.maximum(b0, 1e-300)) * (1 - frac) + np.log(b1) * frac)
    return np.where(upper[..., 0] == 1, b1 * frac, geometric)


def interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp`` row by row without a Python loop: ``x`` (K,), ``xp`` and ``fp`` (K, N)
    with every row of ``xp`` non-decreasing; values beyond a row's ends are clamped."""
    n_points = xp.shape[-1]
    target = np.clip(x, xp[:, 0], xp[:, -1])
    upper = np.clip((xp < target[:, None]).sum(axis=1), 1, n_points - 1)
    rows = np.arange(len(x))
    x0, x1 = xp[rows, upper - 1], xp[rows, upper]
    f0, f1 = fp[rows, upper - 1], fp[rows, upper]
    frac = np.divide(target - x0, x1 - x0, out=np.zeros(len(x)), where=x1 > x0)
    return f0 + (f1 - f0) * frac


def spend_to_bid(curves: PiecewiseCurves, spend: np.ndarray) -> np.ndarray:
    """The current hour's bid per arm expected to spend ``spend`` (period 0's curve)."""
    full = np.zeros(curves.widths.shape[:2])
    full[:, 0] = spend
    return period_bids(curves, full)[:, 0]


def gmv_of_spend(
    spend: cp.Expression, curve_spend: np.ndarray, curve_gmv: np.ndarray
) -> cp.Expression:
    """cvxpy twin of one arm-hour's GMV(spend): the concave hull of the curve's points.

    ``min_j (gmv_j + slope_j (spend - spend_j))`` over the pieces is concave in ``spend``
    and equals the piecewise-linear interpolation on the curve's range.
    """
    widths = np.diff(curve_spend)
    keep = widths > 1e-12
    slopes = np.diff(curve_gmv)[keep] / widths[keep]
    return cp.min(curve_gmv[:-1][keep] + cp.multiply(slopes, spend - curve_spend[:-1][keep]))
