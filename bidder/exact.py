"""The exact allocation of a budget over separable concave responses, in numpy.

With every arm-hour's GMV(spend) concave, the best allocation of a total spend puts money
on the pieces with the highest marginal ROI first: one threshold on marginal ROI decides
everything (the KKT conditions of the problem). Sorting all pieces of a fine
piecewise-linear approximation by marginal ROI and walking down the list therefore solves

* ``max GMV`` subject to the budget and ``ROI >= target`` (``objective="gmv"``), and
* ``max GMV * min(1, ROI / target)^2`` subject to the budget (``objective="score"``),

exactly up to the grid. It is the reference the MPC bidder's accuracy is measured
against, and the planner of the clairvoyant oracle.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from bidder.response import PARAMETRIC, PiecewiseCurves, ResponseModel, build_curves, period_bids
from envs.market import EpisodeMarket


@dataclass(frozen=True)
class ExactPlan:
    """The exact plan: spend per piece (K, hours, P), its totals and the curves used."""

    planned: np.ndarray
    spend: float
    gmv: float
    threshold_roi: float
    curves: PiecewiseCurves


def exact_plan(
    forecast: EpisodeMarket,
    bid_cap: np.ndarray,
    remaining_budget: float,
    roi_target: float,
    spent: float = 0.0,
    gmv: float = 0.0,
    exposure: np.ndarray | None = None,
    n_pieces: int = 48,
    objective: str = "gmv",
    refinements: int = 1,
    model: ResponseModel = PARAMETRIC,
) -> ExactPlan:
    """Solve the allocation over every remaining hour (no blocks) on a fine grid.

    Args:
        forecast: the market of the remaining hours (row 0 = now).
        bid_cap: highest bid per arm (CPM).
        remaining_budget: the hard spending limit.
        roi_target: the ROI target (already including any safety margin).
        spent, gmv: realised so far.
        exposure: cumulative impressions per arm (creative wear).
        n_pieces: grid pieces per arm-hour.
        objective: ``"gmv"`` (ROI as a constraint; if no spending meets it, spend only
            what raises ROI) or ``"score"`` (the constrained-bidding score).
        refinements: times to solve again on grids centred on the last solution; each
            pass makes the pieces around the optimum much finer (a broad grid rounds
            every arm-hour to a coarse bid, which costs several % on some markets).
        model: the response model of the curves (the closed form by default).
    """
    solve = functools.partial(
        _solve,
        forecast,
        bid_cap,
        remaining_budget,
        roi_target,
        spent,
        gmv,
        exposure,
        n_pieces,
        objective,
        model,
    )
    plan = solve(centres=None)
    for _ in range(refinements):
        plan = solve(centres=period_bids(plan.curves, plan.planned.sum(axis=-1)))
    return plan


def _solve(
    forecast,
    bid_cap,
    remaining_budget,
    roi_target,
    spent,
    gmv,
    exposure,
    n_pieces,
    objective,
    model,
    centres,
) -> ExactPlan:
    curves = build_curves(
        forecast,
        bid_cap,
        n_pieces,
        forecast.horizon,
        exposure,
        blocks=False,
        centres=centres,
        model=model,
    )
    slopes, widths = curves.slopes.ravel(), curves.widths.ravel()
    order = np.argsort(-slopes, kind="stable")
    w, r = widths[order], slopes[order]
    cum_spend = np.concatenate([[0.0], np.cumsum(w)])
    cum_gmv = np.concatenate([[0.0], np.cumsum(w * r)])

    # Spend along the sorted list, as a continuous amount x in [0, cap].
    cap = min(remaining_budget, cum_spend[-1])
    candidates = np.append(cum_spend[cum_spend <= cap], cap)
    gmv_at = np.interp(candidates, cum_spend, cum_gmv)
    total_spend, total_gmv = spent + candidates, gmv + gmv_at
    if objective == "score":
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(total_spend > 0, total_gmv / total_spend / roi_target, 1.0)
        values = total_gmv * np.minimum(1.0, ratio) ** 2
        amount = float(candidates[int(np.argmax(values))])
    elif objective == "gmv":
        meets = total_gmv >= roi_target * total_spend - 1e-9
        if meets.any():
            last = int(np.flatnonzero(meets)[-1])
            amount = float(candidates[last])
            if last + 1 < len(candidates):
                # Within the next piece ROI falls linearly in money: stop exactly at target.
                x0, x1 = candidates[last], candidates[last + 1]
                g0, g1 = gmv_at[last], gmv_at[last + 1]
                slope = (g1 - g0) / (x1 - x0) if x1 > x0 else 0.0
                surplus = gmv + g0 - roi_target * (spent + x0)
                if slope < roi_target and surplus > 0:
                    amount = float(min(x1, x0 + surplus / (roi_target - slope)))
        else:
            # The target is out of reach: spend only while it raises ROI.
            with np.errstate(divide="ignore", invalid="ignore"):
                roi = np.where(total_spend > 0, total_gmv / total_spend, 0.0)
            amount = float(candidates[int(np.argmax(roi))])
    else:
        raise ValueError(f"unknown objective {objective!r}; use 'gmv' or 'score'")

    taken_sorted = np.clip(amount - cum_spend[:-1], 0.0, w)
    taken = np.empty_like(taken_sorted)
    taken[order] = taken_sorted
    planned = taken.reshape(curves.widths.shape)
    used = taken_sorted > 0
    return ExactPlan(
        planned=planned,
        spend=float(taken_sorted.sum()),
        gmv=float((taken_sorted * r).sum()),
        threshold_roi=float(r[used][-1]) if used.any() else float("inf"),
        curves=curves,
    )
