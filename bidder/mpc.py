"""The MPC bidder: a plan and forecasts in, per-arm bids under the budget and ROI target out.

Every hour it solves one linear program over the rest of the campaign (``docs/bidder.md``):

    maximise    sum_n w_n s_n - penalty * slack
    subject to  lower_n <= s_n <= upper_n                      (pieces, bid-change limit)
                sum_n s_n <= remaining budget                  (hard)
                sum_n (r_n - R') s_n + slack >= R' S - G        (ROI target, soft)
                slack >= 0

where ``s_n`` is the planned spend on piece ``n`` of an arm's piecewise-linear GMV(spend)
curve in a planning period, ``r_n`` the piece's predicted marginal ROI, ``w_n = r_n``
shaped by the plan, ``R'`` the ROI target with its safety margin and ``S``, ``G`` the
spend and GMV realised so far. The problem is compiled once (DPP) and re-solved with new
Parameter values; only the first hour is applied, by inverting each arm's spend(bid) curve.

The LP is written in one of two forms (``MPCConfig.formulation``). ``"fill"`` (the
default) plans each piece's filled share ``t_n = s_n / upper_n`` in [0, 1]: constant
bounds, which HiGHS takes as column bounds, leaving an LP of a few rows (budget, ROI
target, and one row per arm for the bid-change limit's least spend this hour). ``"spend"``
plans ``s_n`` itself with its bounds as rows; it is the reference the benches and tests
compare with. Both have the same optimum: within an arm and period the pieces' value and
ROI coefficients fall with the piece, so an arm's least spend this hour as one row is
met, at the optimum, by filling its pieces in order, as the per-piece bound does.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from bidder.errors import BidderInputError
from bidder.lp_solver import NAME as PERSISTENT_HIGHS
from bidder.lp_solver import CompiledLP, PersistentHighs
from bidder.plan import Plan
from bidder.response import (
    PARAMETRIC,
    PiecewiseCurves,
    ResponseModel,
    build_curves,
    interp_rows,
    period_bids,
    period_sizes,
    spend_to_bid,
)
from envs.market import EpisodeMarket, creative_wear

#: The bid-change limit lets an arm bid up to this share of its forecast median price in
#: the next hour however low its last bid was, so that a paused arm can always return.
REENTRY_PRICE_SHARE = 0.5
#: Solver statuses whose solution is used.
_USABLE = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


#: The LP forms :class:`MPCBidder` can build (see the module's docstring).
FORMULATIONS = ("fill", "spend")

#: For the ``"spend"`` form, from this many spend pieces (arms x periods x pieces) the LP
#: goes to Clarabel first: measured on one core (bench/mpc_latency.py), ECOS is faster
#: below it (5.6 against 6.9 ms a decision at 10 arms, 8.6 against 10.8 at 20, 16.0
#: against 17.8 at 50: 1,200 pieces), Clarabel above (28.8 against 39.4 ms at 100 arms:
#: 2,400 pieces; 50 against 84 at 200; 199 against 417 at 500), with the same plan GMV.
LARGE_LP_PIECES = 2_000


def default_solvers(n_variables: int, formulation: str = "fill") -> tuple[str, ...]:
    """The solver order for an LP of ``n_variables`` pieces (the later ones are fallbacks).

    The ``"fill"`` form goes to HiGHS (:class:`bidder.lp_solver.PersistentHighs`, bounds as
    column bounds) at every size; the ``"spend"`` form to ECOS or Clarabel by size.
    """
    if formulation == "fill":
        return (PERSISTENT_HIGHS, "CLARABEL", "ECOS")
    return ("CLARABEL", "ECOS") if n_variables >= LARGE_LP_PIECES else ("ECOS", "CLARABEL")


@dataclass(frozen=True)
class MPCConfig:
    """Settings of :class:`MPCBidder`.

    Attributes:
        n_pieces: pieces per arm and planning period in the GMV(spend) curves.
        roi_safety: the bidder's own relative ROI margin (the plan's is added).
        max_bid_change: an arm's bid may move by at most this factor from one hour to
            the next (once it has a bid).
        slack_penalty: objective cost of one unit of ROI shortfall (scaled GMV); large,
            so the ROI target is given up only when it cannot be met.
        solvers: cvxpy solvers tried in order; then the conservative rule. ``"HIGHS"``
            is :class:`bidder.lp_solver.PersistentHighs`. ``None`` (the default) chooses by
            the formulation and the LP's size (:func:`default_solvers`).
        formulation: ``"fill"`` (the default) or ``"spend"``, the LP's form (see the
            module's docstring); both have the same optimum.
        blocks: group distant hours into blocks of doubling length (1, 1, 2, 4, ...);
            false plans every hour separately (larger, slower, slightly more exact).
        max_periods: at most this many planning periods; the last one takes every
            remaining hour (``None``: no limit).
        explore: bid variation for learning (0: none). Each hour every arm with a bid
            bids ``exp(+explore)`` or ``exp(-explore)`` times the planned bid, the sign
            alternating by hour and arm, so that logs show each arm's response at more
            than one bid. The varied bids never expect to spend more than the planned
            hour (the raised ones are pulled back until they do not), so exploring
            moves spend between arms but never adds to it (docs/bidder.md,
            "Exploration").
        compiled: with HiGHS, solve the problem cvxpy compiled once straight from its
            Parameters (:class:`bidder.lp_solver.CompiledLP`); false goes through
            ``problem.solve`` every hour (the same LP and plans, slower).
    """

    n_pieces: int = 8
    roi_safety: float = 0.03
    max_bid_change: float = 3.0
    slack_penalty: float = 50.0
    solvers: tuple[str, ...] | None = None
    blocks: bool = True
    max_periods: int | None = 3
    explore: float = 0.0
    formulation: str = "fill"
    compiled: bool = True

    def __post_init__(self) -> None:
        if self.formulation not in FORMULATIONS:
            raise BidderInputError(
                f"formulation = {self.formulation!r}: must be one of {', '.join(FORMULATIONS)}"
            )


@dataclass(frozen=True)
class CampaignState:
    """What the campaign knows at the start of an hour.

    Attributes:
        budget, roi_target: the advertiser's settings.
        spent, gmv: realised so far (currency).
        previous_bids: last hour's bids in CPM (``None`` before the first hour).
        bid_cap: the highest bid allowed per arm (CPM).
        exposure: cumulative impressions per arm (creative wear).
    """

    budget: float
    roi_target: float
    spent: float
    gmv: float
    bid_cap: np.ndarray
    previous_bids: np.ndarray | None = None
    exposure: np.ndarray | None = None

    def __post_init__(self) -> None:
        budget = self.budget
        if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
            raise BidderInputError(
                f"budget = {budget!r}: must be a positive finite number; give the campaign's budget"
            )
        target = self.roi_target
        if not (isinstance(target, (int, float)) and math.isfinite(target) and target >= 0):
            raise BidderInputError(
                f"roi_target = {target!r}: must be a finite number >= 0 (0: no ROI target); "
                "give the campaign's ROI target"
            )
        for name in ("spent", "gmv"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise BidderInputError(
                    f"{name} = {value!r}: must be a finite number >= 0; "
                    "pass what the campaign has realised so far"
                )
        cap = np.asarray(self.bid_cap, dtype=float)
        if not (np.all(np.isfinite(cap)) and np.all(cap > 0)):
            raise BidderInputError("bid_cap: every arm needs a positive finite bid cap (CPM)")

    @property
    def remaining_budget(self) -> float:
        return max(self.budget - self.spent, 0.0)


@dataclass
class Decision:
    """One hour's bids and why.

    Attributes:
        bids_cpm: the bid per arm (CPM).
        planned_spend, predicted_gmv: expected spend and GMV of this hour per arm.
        plan_spend, plan_gmv: planned spend and predicted GMV over the rest of the campaign.
        predicted_roi: predicted ROI of the whole campaign if the plan is followed.
        budget_dual: marginal (plan-shaped) GMV of one more unit of budget.
        roi_dual: shadow price of the ROI constraint; ``roi_binding`` whether it binds.
        roi_slack: ROI shortfall the plan accepts, in GMV currency units (0 = met).
        best_reachable_roi: the best campaign ROI any further spending reaches.
        roi_target_reachable: whether ``best_reachable_roi`` meets the ROI target.
        solver: the solver that produced the plan, or ``"fallback"``.
        fallback: why the conservative rule was used (``None`` when it was not).
        solve_ms: wall time of the decision.
        spend_by_period, gmv_by_period, bids_by_period: the whole plan per arm and
            planning period (K, periods): planned spend, predicted GMV and the common bid
            of the period (see ``bidder.response.period_sizes`` for the periods' hours).
    """

    bids_cpm: np.ndarray
    planned_spend: np.ndarray
    predicted_gmv: np.ndarray
    plan_spend: float
    plan_gmv: float
    predicted_roi: float
    budget_dual: float
    roi_dual: float
    roi_binding: bool
    roi_slack: float
    best_reachable_roi: float
    roi_target_reachable: bool
    solver: str
    fallback: str | None = None
    solve_ms: float = 0.0
    spend_by_period: np.ndarray | None = None
    gmv_by_period: np.ndarray | None = None
    bids_by_period: np.ndarray | None = None

    def explain(
        self, spend: float | None = None, gmv: float | None = None, roi: float | None = None
    ) -> str:
        """One paragraph a marketer can read. ``spend``, ``gmv`` and ``roi`` replace the
        plan's own figures (the LP's pieces) where a caller reports others, such as the
        closed-form expectation of the bids, so that every figure it shows agrees."""
        spend = self.plan_spend if spend is None else spend
        gmv = self.plan_gmv if gmv is None else gmv
        roi = self.predicted_roi if roi is None else roi
        parts = [
            f"plans {spend:,.0f} more spend for {gmv:,.0f} GMV (campaign ROI {roi:.2f})",
            f"one more unit of budget is worth {self.budget_dual:.2f} GMV",
        ]
        if not self.roi_target_reachable:
            parts.append(
                f"the ROI target cannot be met: best reachable ROI {self.best_reachable_roi:.2f}"
            )
        elif self.roi_slack >= 0.5:  # below half a currency unit it is rounding
            parts.append(f"the plan falls short of the ROI target by {self.roi_slack:,.0f} GMV")
        elif self.roi_binding:
            parts.append(f"the ROI target binds (shadow price {self.roi_dual:.2f})")
        else:
            parts.append("the ROI target does not bind")
        if self.fallback:
            parts.append(f"conservative fallback used ({self.fallback})")
        return "; ".join(parts) + "."


_THREAD = threading.local()
#: Compiled bidders kept per thread by :func:`reusable_bidder`.
REUSABLE_BIDDERS = 8


def reusable_bidder(
    n_arms: int,
    horizon: int,
    config: MPCConfig | None = None,
    cache: OrderedDict | None = None,
) -> MPCBidder:
    """A bidder of this shape, compiled once and reset for a new campaign.

    Building and compiling the cvxpy problem costs about as much as one solve (0.02 s for
    a 25-arm day-ahead plan); a batch of campaigns of one shape pays it once. The bidder
    plans exactly as a new one would. It is kept in ``cache`` (the :data:`REUSABLE_BIDDERS`
    most recent shapes; by default this thread's) and is the caller's until the next call
    with the same shape and cache: a strategy that plays while others play passes its own.
    """
    if cache is None:
        cache = getattr(_THREAD, "bidders", None)
        if cache is None:
            cache = _THREAD.bidders = OrderedDict()
    key = (n_arms, horizon, config or MPCConfig())
    bidder = cache.pop(key, None) or MPCBidder(n_arms, horizon, config)
    cache[key] = bidder
    while len(cache) > REUSABLE_BIDDERS:
        cache.popitem(last=False)
    bidder.reset()
    return bidder


class MPCBidder:
    """The hourly MPC bidder for one campaign shape (number of arms and hours).

    The cvxpy problem is built once in ``__init__`` and re-solved by :meth:`decide`. Its
    curves come from ``model`` (:class:`~bidder.response.ResponseModel`; by default the
    closed form on the forecast's parameters).
    """

    def __init__(
        self,
        n_arms: int,
        horizon: int,
        config: MPCConfig | None = None,
        model: ResponseModel = PARAMETRIC,
    ):
        self.config = config or MPCConfig()
        self.model = model
        self.n_arms, self.horizon = n_arms, horizon
        self.n_periods = len(period_sizes(horizon, self.config.blocks))
        if self.config.max_periods is not None:
            self.n_periods = min(self.n_periods, self.config.max_periods)
        self.shape = (n_arms, self.n_periods, self.config.n_pieces)
        size = int(np.prod(self.shape))
        #: The solvers tried in order (the configured ones, or chosen by form and size).
        self.solvers = self.config.solvers or default_solvers(size, self.config.formulation)
        self.slack = cp.Variable(nonneg=True, name="roi_slack")
        if self.config.formulation == "fill":
            objective, constraints = self._fill_form(size)
        else:
            objective, constraints = self._spend_form(size)
        self.problem = cp.Problem(
            cp.Maximize(objective - self.config.slack_penalty * self.slack), constraints
        )
        assert self.problem.is_dpp()
        # One Problem per solver: switching solvers on one Problem recompiles it.
        self._problems = {self.solvers[0]: self.problem}
        # This bidder's own HiGHS instance (not shared between threads).
        self._highs = PersistentHighs()
        self._compiled: CompiledLP | None = None  # made at the first HiGHS solve
        # Grid centres per arm and period: the last solution's bids (None: a broad grid).
        self.centres: np.ndarray | None = None
        # Decisions taken in this campaign (the exploration's sign pattern).
        self.decisions_made = 0

    def reset(self) -> None:
        """Forget the last solution (a new campaign of the same shape)."""
        self.centres = None
        self.decisions_made = 0
        self._highs.forget()

    def _fill_form(self, size: int):
        """Variables: each piece's filled share in [0, 1] (column bounds for HiGHS).

        Per piece: its shaped value, ROI coefficient and width (spend per unit of ``x``,
        scaled); per arm, its current-hour pieces' widths; and ``rhs``: the remaining
        budget, the ROI row's right-hand side and each arm's least spend this hour under
        the bid-change limit. No Parameter is indexed in an expression: cvxpy's
        compilation of an indexed Parameter grows with the square of its size (14 s
        at 1,000 arms against 1 s), while indexing the variable costs nothing.
        """
        n_arms, _, n_pieces = self.shape
        self.x = cp.Variable(size, bounds=[0.0, 1.0], name="filled_share")
        self.value = cp.Parameter(size, name="shaped_value")
        self.roi_coef = cp.Parameter(size, name="roi_coefficient")
        self.cost = cp.Parameter(size, name="piece_width")
        self.first_cost = cp.Parameter((n_arms, n_pieces), name="first_hour_width")
        self.rhs = cp.Parameter(2 + n_arms, name="budget_roi_floors")
        self.budget_constraint = self.cost @ self.x <= self.rhs[0]
        self.roi_constraint = self.roi_coef @ self.x + self.slack >= self.rhs[1]
        # The bid-change limit's least spend this hour, one row per arm.
        first = (np.arange(n_arms)[:, None] * (size // n_arms) + np.arange(n_pieces)).ravel()
        hour0 = cp.reshape(self.x[first], (n_arms, n_pieces), order="C")
        floors = cp.sum(cp.multiply(self.first_cost, hour0), axis=1) >= self.rhs[2:]
        return self.value @ self.x, [self.budget_constraint, self.roi_constraint, floors]

    def _spend_form(self, size: int):
        """Variables: each piece's spend, its bounds as rows (the reference form)."""
        self.x = cp.Variable(size, nonneg=True, name="planned_spend")
        self.value = cp.Parameter(size, name="shaped_value")
        self.roi_coef = cp.Parameter(size, name="roi_coefficient")
        self.lower = cp.Parameter(size, name="lower")
        self.upper = cp.Parameter(size, name="upper")
        self.budget = cp.Parameter(name="remaining_budget")
        self.roi_rhs = cp.Parameter(name="roi_rhs")
        self.budget_constraint = cp.sum(self.x) <= self.budget
        self.roi_constraint = self.roi_coef @ self.x + self.slack >= self.roi_rhs
        constraints = [self.x >= self.lower, self.x <= self.upper]
        return self.value @ self.x, [*constraints, self.budget_constraint, self.roi_constraint]

    # -- the problem's data ---------------------------------------------------------------
    def _first_hour_bounds(
        self, forecast: EpisodeMarket, state: CampaignState, curves: PiecewiseCurves
    ) -> tuple[np.ndarray, np.ndarray]:
        """Spend bounds of the current hour implied by the bid-change limit."""
        total = curves.hour0_spend[:, -1]
        if state.previous_bids is None:
            return np.zeros(self.n_arms), total
        factor = self.config.max_bid_change
        # An arm paused at (nearly) 0 may come back within one hour up to half its median
        # price: without this floor a zero bid would cap every later hour at zero.
        reentry = REENTRY_PRICE_SHARE * forecast.price_median[0]
        high = np.minimum(np.maximum(state.previous_bids * factor, reentry), state.bid_cap)
        bids = np.stack([state.previous_bids / factor, high])
        wear = 1.0 if state.exposure is None else creative_wear(forecast, state.exposure)
        spend, _ = self.model.response(forecast, bids[None], wear)
        return np.minimum(spend[0, 0], total), np.minimum(spend[0, 1], total)

    @staticmethod
    def _fill(widths: np.ndarray, amount: np.ndarray) -> np.ndarray:
        """Per-piece spend that fills each arm's pieces in order up to ``amount``."""
        before = np.cumsum(widths, axis=-1) - widths
        return np.clip(amount[:, None] - before, 0.0, widths)

    def _data(self, forecast: EpisodeMarket, state: CampaignState, plan: Plan):
        cfg = self.config
        curves = build_curves(
            forecast,
            state.bid_cap,
            cfg.n_pieces,
            self.n_periods,
            state.exposure,
            cfg.blocks,
            self.centres,
            self.model,
        )
        low0, high0 = self._first_hour_bounds(forecast, state, curves)
        upper = curves.widths.copy()
        lower = np.zeros_like(upper)
        upper[:, 0, :] = self._fill(upper[:, 0, :], high0)
        lower[:, 0, :] = self._fill(curves.widths[:, 0, :], low0)
        remaining = state.remaining_budget
        if lower.sum() > remaining:  # never let the bid-change limit force overspending
            lower *= remaining / lower.sum() * (1.0 - 1e-9)
        target = state.roi_target * (1.0 + cfg.roi_safety + plan.roi_margin)
        shaped = curves.slopes * plan.tilt_vector(self.n_arms)[:, None, None]
        shaped[:, 0, :] *= 2.0**plan.pacing
        return curves, lower, upper, shaped, target

    # -- decisions ------------------------------------------------------------------------
    def decide(
        self, forecast: EpisodeMarket, state: CampaignState, plan: Plan | None = None
    ) -> Decision:
        """Bids for the current hour (row 0 of ``forecast``).

        The bid grid is centred on the previous solution; the first decision of a
        campaign solves once on a broad grid and once more on a grid centred on that.
        """
        started = time.perf_counter()
        plan = plan or Plan.neutral()
        if self.centres is None:
            self._solve(forecast, state, plan, started)
        decision = self._solve(forecast, state, plan, started)
        if self.config.explore > 0:
            decision.bids_cpm = self._explored(self._last_curves, decision.bids_cpm, state)
        self.decisions_made += 1
        return decision

    def _solve(
        self, forecast: EpisodeMarket, state: CampaignState, plan: Plan, started: float
    ) -> Decision:
        curves, lower, upper, shaped, target = self._data(forecast, state, plan)
        self._last_curves = curves
        remaining = state.remaining_budget
        # Scale money so the solver sees numbers near 1: by the remaining budget, or by
        # what the market can absorb when that is far less. A budget of 1e12 scaled by
        # itself left every piece near 1e-8, inside the solver's tolerances, and the ROI
        # constraint was met only up to them (ROI 2.4 for a target of 4).
        bounds = np.maximum(upper, lower)
        absorbable = float(bounds.sum())
        scale = max(min(remaining, absorbable), 1e-9 * state.budget, 1e-9)
        spent_target = (target * state.spent - state.gmv) / scale
        if self.config.formulation == "fill":
            widths = bounds / scale
            floors = lower[:, 0, :].sum(axis=1) / scale
            values = {
                self.value: (shaped * widths).ravel(),
                self.roi_coef: ((curves.slopes - target) * widths).ravel(),
                self.cost: widths.ravel(),
                self.first_cost: widths[:, 0, :],
                self.rhs: np.concatenate([[remaining / scale, spent_target], floors]),
            }
        else:
            values = {
                self.value: shaped.ravel(),
                self.roi_coef: (curves.slopes - target).ravel(),
                self.lower: lower.ravel() / scale,
                self.upper: bounds.ravel() / scale,
                self.budget: np.asarray(remaining / scale),
                self.roi_rhs: np.asarray(spent_target),
            }
        # The Parameters are set only for problem.solve (the compiled path reads the
        # values directly: cvxpy's checks on setting them cost more than the solve).
        parameters_set = False

        solution, solver, failure = None, "fallback", None
        budget_dual = roi_dual = 0.0
        for name in self.solvers:
            try:
                highs = name == PERSISTENT_HIGHS
                if highs and self.config.compiled:
                    # HiGHS starts from the last hour's basis, which reset() forgets.
                    if self._compiled is None:
                        self._compiled = CompiledLP(self._problem_for(name), self._highs)
                    compiled = self._compiled
                    status = compiled.solve(values, warm_start=True)
                    if status in _USABLE:
                        solution, solver = compiled.value(self.x), name
                        budget_dual = float(compiled.dual(self.budget_constraint)[0])
                        roi_dual = float(compiled.dual(self.roi_constraint)[0])
                else:
                    if not parameters_set:
                        for parameter, value in values.items():
                            parameter.value = value
                        parameters_set = True
                    problem = self._problem_for(name)
                    with warnings.catch_warnings():
                        # "optimal_inaccurate" is reported in the decision, not as a warning.
                        warnings.simplefilter("ignore", UserWarning)
                        # The others start cold: a solver kept from the last solve
                        # (Clarabel's) plans ~1e-11 apart from a new one, so a reused
                        # bidder would not plan exactly as a new one does.
                        problem.solve(
                            solver=self._highs if highs else name,
                            enforce_dpp=True,
                            warm_start=highs,
                        )
                    status = problem.status
                    if status in _USABLE and self.x.value is not None:
                        solution, solver = np.asarray(self.x.value), name
                        # The Problems share their constraint objects (the latest duals).
                        budget_dual = float(self.budget_constraint.dual_value or 0.0)
                        roi_dual = float(self.roi_constraint.dual_value or 0.0)
                if solution is not None:
                    if self.config.formulation == "fill":
                        solution = np.clip(solution, 0.0, 1.0) * bounds.ravel()
                    else:
                        solution = solution * scale
                    break
                failure = f"{name}: {status}"
            except (cp.SolverError, ValueError, ArithmeticError) as err:
                failure = f"{name}: {type(err).__name__}"
        if solution is None:
            solution = self._conservative(curves, lower, upper, state, target).ravel()
        else:
            failure = None
        planned = self._safe(solution.reshape(self.shape), lower, upper, remaining)
        self.centres = period_bids(curves, planned.sum(axis=-1))
        decision = self._decision(
            curves, planned, state, target, solver, failure, budget_dual, roi_dual, started
        )
        decision.spend_by_period = planned.sum(axis=-1)
        decision.gmv_by_period = (planned * curves.slopes).sum(axis=-1)
        decision.bids_by_period = np.minimum(self.centres, state.bid_cap[:, None])
        return decision

    def _explored(
        self, curves: PiecewiseCurves, bids: np.ndarray, state: CampaignState
    ) -> np.ndarray:
        """``bids`` varied by ``exp(+-explore)`` (alternating by hour and arm), with the
        raised ones pulled back until the hour's expected spend is at most the planned
        bids' (and the budget left)."""
        step = self.config.explore
        if step <= 0:
            return bids
        sign = np.where((self.decisions_made + np.arange(self.n_arms)) % 2 == 0, 1.0, -1.0)
        grid, spend_grid = curves.bids[:, 0, :], curves.hour0_spend
        planned = float(interp_rows(bids, grid, spend_grid).sum())
        cap = min(planned, state.remaining_budget)

        def varied(up_share: float) -> np.ndarray:
            factor = np.exp(np.where(sign > 0, up_share * step, -step))
            return np.where(bids > 0, np.minimum(bids * factor, state.bid_cap), 0.0)

        if interp_rows(varied(1.0), grid, spend_grid).sum() <= cap:
            return varied(1.0)
        low, high = 0.0, 1.0  # varied(0) lowers bids only, so it spends no more
        for _ in range(30):
            mid = 0.5 * (low + high)
            if interp_rows(varied(mid), grid, spend_grid).sum() <= cap:
                low = mid
            else:
                high = mid
        return varied(low)

    def _problem_for(self, solver: str) -> cp.Problem:
        if solver not in self._problems:
            self._problems[solver] = cp.Problem(self.problem.objective, self.problem.constraints)
        return self._problems[solver]

    @staticmethod
    def _safe(
        planned: np.ndarray, lower: np.ndarray, upper: np.ndarray, remaining: float
    ) -> np.ndarray:
        """Clip a solver's answer to its bounds and the budget (solvers have tolerances)."""
        planned = np.clip(planned, 0.0, np.maximum(upper, lower))
        total = planned.sum()
        if total > remaining:
            planned *= remaining / total * (1.0 - 1e-12)
        return planned

    def _conservative(
        self,
        curves: PiecewiseCurves,
        lower: np.ndarray,
        upper: np.ndarray,
        state: CampaignState,
        target: float,
    ) -> np.ndarray:
        """The rule used when every solver fails: spend this hour at most an even share of
        the remaining budget, only on pieces whose predicted marginal ROI meets the target,
        best first. It cannot overspend and cannot knowingly miss the ROI target."""
        hours_left = max(int(np.count_nonzero(curves.widths.sum(axis=(0, 2)) > 0)), 1)
        allowance = state.remaining_budget / max(hours_left, 1)
        planned = np.zeros_like(upper)
        first = np.where(curves.slopes[:, 0, :] >= target, upper[:, 0, :], 0.0)
        order = np.argsort(-curves.slopes[:, 0, :], axis=None)
        flat = first.ravel()
        taken = np.minimum(
            flat[order], np.maximum(allowance - np.cumsum(flat[order]) + flat[order], 0)
        )
        out = np.zeros_like(flat)
        out[order] = taken
        planned[:, 0, :] = out.reshape(first.shape)
        return planned

    def _decision(
        self, curves, planned, state, target, solver, failure, budget_dual, roi_dual, started
    ) -> Decision:
        hour0 = planned[:, 0, :].sum(axis=1)
        bids = np.minimum(spend_to_bid(curves, hour0), state.bid_cap)
        predicted_gmv = interp_rows(hour0, curves.hour0_spend, curves.hour0_gmv)
        plan_spend = float(planned.sum())
        plan_gmv = float((planned * curves.slopes).sum())
        total_spend = state.spent + plan_spend
        predicted_roi = (state.gmv + plan_gmv) / total_spend if total_spend > 0 else 0.0
        shortfall = max(target * total_spend - state.gmv - plan_gmv, 0.0)
        best = self.best_reachable_roi(curves, state)
        return Decision(
            bids_cpm=bids,
            planned_spend=hour0,
            predicted_gmv=predicted_gmv,
            plan_spend=plan_spend,
            plan_gmv=plan_gmv,
            predicted_roi=predicted_roi,
            budget_dual=budget_dual,
            roi_dual=roi_dual,
            roi_binding=roi_dual > 1e-6 or shortfall > 1e-6 * max(state.budget, 1.0),
            roi_slack=shortfall if predicted_roi < target * (1 - 1e-6) else 0.0,
            best_reachable_roi=best,
            roi_target_reachable=best >= state.roi_target * (1 - 1e-9),
            solver=solver,
            fallback=failure,
            solve_ms=(time.perf_counter() - started) * 1e3,
        )

    @staticmethod
    def best_reachable_roi(curves: PiecewiseCurves, state: CampaignState) -> float:
        """The best campaign ROI any further spending within the budget can reach."""
        slopes, widths = curves.slopes.ravel(), curves.widths.ravel()
        order = np.argsort(-slopes)
        spend = np.cumsum(widths[order])
        gmv = np.cumsum(widths[order] * slopes[order])
        within = spend <= state.remaining_budget
        total_spend = np.concatenate([[state.spent], state.spent + spend[within]])
        total_gmv = np.concatenate([[state.gmv], state.gmv + gmv[within]])
        if not within.all():
            # Part of the next piece fits: its ROI is between the neighbours', include it.
            total_spend = np.append(total_spend, state.spent + state.remaining_budget)
            partial = state.remaining_budget - (spend[within][-1] if within.any() else 0.0)
            last_gmv = total_gmv[-1] + partial * slopes[order][int(within.sum())]
            total_gmv = np.append(total_gmv, last_gmv)
        with np.errstate(divide="ignore", invalid="ignore"):
            roi = np.where(total_spend > 0, total_gmv / total_spend, 0.0)
        return float(roi.max()) if roi.size else math.nan
