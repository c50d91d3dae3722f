"""The planner's view of a campaign: fixed-size features in, a plan for the MPC bidder out.

RL proposes, MPC disposes: a policy never bids. Every hour it chooses a small plan vector
(how much ROI risk to take, how strongly to tilt towards arms whose value is rising, how
far to extrapolate the forecasts' trends) and the MPC bidder turns that plan into bids
under the hard budget and the ROI target. The same features and the same
action mapping serve training (:class:`PlannerEnv`) and deployment
(:class:`PlannedMPCStrategy` and its subclass ``PPOStrategy``), so what the policy learns
is exactly what it later sees.

Why a low-dimensional plan: sampled markets have 2 to 15 arms, and one policy must serve
all of them. The action therefore has no per-arm entries; per-arm tilts are a function of
per-arm evidence (the forecaster's corrections) scaled by one learned gain, and the
observation summarises the arms by means and extremes.

Why a risk level rather than a margin: how far the campaign's final ROI can fall below
its plan depends on how much GMV is still to come (a sum of random orders) against what
is already banked. The action picks a z-score, and the ROI margin is that many standard
deviations of the remaining GMV (:meth:`PlannedMPCStrategy.roi_uncertainty`): wide early
in the day, shrinking to nothing as the day's outcome becomes known. MPC alone keeps a
fixed 3% margin all day. Two terms no policy can turn off sit beside it: near the end,
when few hours are left to make up a shortfall, the z-score is at least ``FINAL_Z /
sqrt(hours left)`` (2 in the last hour, 1.41 in the one before); and the GMV a forecast
has lately been overestimating (:meth:`bidder.forecast.Forecaster.value_bias`) is held
back in full (:meth:`PlannedMPCStrategy.forecast_shortfall`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bidder.plan import ROI_MARGIN_RANGE, TILT_RANGE, Plan
from envs import AdMarketEnv, Scenario
from envs.market import EpisodeMarket
from envs.market_env import resolve_scenario
from envs.presets import PRESETS
from envs.sampler import sample_scenario
from policies.mpc_strategy import MPCStrategy

#: Names of the planner's observation entries, in order (all roughly in [-3, 3]).
FEATURE_NAMES = (
    "remaining_budget_share",
    "remaining_hours_share",
    "pace_gap",
    "roi_vs_target",
    "hour_sin",
    "hour_cos",
    "remaining_opportunity_share",
    "last_predicted_roi_vs_target",
    "last_projected_spend_share",
    "last_roi_binding",
    "last_roi_slack_share",
    "last_budget_value",
    "last_hour_spend_share",
    "last_hour_roi_vs_target",
    "mean_log_price_factor",
    "max_log_price_factor",
    "mean_log_value_factor",
    "min_log_value_factor",
    "mean_log_traffic_factor",
    "arms_scaled",
    "roi_uncertainty",
    "mean_value_trend",
    "min_value_trend",
    "max_price_trend",
    "mean_traffic_trend",
    "forecast_shortfall",
    # What the planner needs to judge how far the bidder's model is off. Policies
    # trained before these read the ones above.
    "spend_forecast_error",
    "gmv_forecast_error",
    "worst_channel_roi_error",
    "bid_variation",
    "prior_delay_days",
)
#: The features of policies trained before the model-judging ones existed.
BASE_FEATURES = FEATURE_NAMES[: FEATURE_NAMES.index("forecast_shortfall") + 1]
#: Names of the planner's action entries, each in [-1, 1].
ACTION_NAMES = ("roi_risk", "trend_tilt", "trend_gain")
N_FEATURES = len(FEATURE_NAMES)
N_ACTIONS = len(ACTION_NAMES)
#: The z-score of the ROI margin at ``roi_risk = 0``, and how far +-1 moves it.
NEUTRAL_Z, Z_RANGE = 1.0, 1.5
#: The lowest z-score of the last hour's margin, which nothing after it can make up for;
#: with ``h`` hours left the floor is ``FINAL_Z / sqrt(h)``.
FINAL_Z = 2.0
#: Trend-feature scale: slopes in log units per hour times this are roughly in [-1, 1].
TREND_SCALE = 5.0
#: Features are clipped to +-FEATURE_BOUND; actions live in [-1, 1].
FEATURE_BOUND = 5.0


def planner_spaces(n_features: int = N_FEATURES) -> tuple[spaces.Box, spaces.Box]:
    """The planner's (observation, action) spaces, for the environment and saved policies
    (``n_features``: how many of the features a policy reads)."""
    observation = spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (n_features,), dtype=np.float32)
    return observation, spaces.Box(-1.0, 1.0, (N_ACTIONS,), dtype=np.float32)


def feature_indices(names: Sequence[str]) -> np.ndarray:
    """Positions of ``names`` in :data:`FEATURE_NAMES` (what a policy reads, in order).

    Raises:
        ValueError: an unknown or repeated name, or none at all.
    """
    names = list(names)
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if not names or unknown or len(set(names)) != len(names):
        problem = f"unknown feature {unknown[0]!r}" if unknown else "name each feature once"
        raise ValueError(f"{problem}; this planner knows {', '.join(FEATURE_NAMES)}")
    return np.array([FEATURE_NAMES.index(n) for n in names], dtype=int)


class PlannedMPCStrategy(MPCStrategy):
    """The MPC bidder with a plan set from a normalised planner action each hour.

    The action is held in :attr:`action`; ``None`` gives the neutral plan, i.e. exactly
    MPC alone, and the zero action is MPC with the risk-calibrated ROI margin at
    ``NEUTRAL_Z`` standard deviations. Subclasses override :meth:`choose_action` to pick it from
    :meth:`features`; the training environment sets it from outside instead.
    """

    def reset(self, env: AdMarketEnv, prior: EpisodeMarket | None = None) -> None:
        super().reset(env, prior)
        self.action: np.ndarray | None = None
        self._trend_gain = 0.0
        self.last_spend = self.last_gmv = 0.0
        prior = self.forecaster.prior
        # Spend available at median prices per hour: the day's shape of opportunity.
        opportunity = (prior.traffic * prior.price_median).sum(axis=1)
        self._opportunity_left = np.cumsum(opportunity[::-1])[::-1] / max(opportunity.sum(), 1e-12)
        # Per arm: spend and GMV the decisions predicted for the hours played, and what
        # those hours realised; sums of log bids and their squares (bid variation).
        k = env.n_arms
        self._predicted = np.zeros((2, k))
        self._realised = np.zeros((2, k))
        self._log_bids = np.zeros((3, k))  # count, sum, sum of squares
        # Each arm's channel: the campaign's own list where the strategy plays one
        # (policies.autopilot), else the scenario's arms.
        channels = getattr(env, "arm_channels", None)
        if channels is None:
            channels = [arm.channel for arm in env.scenario.arms]
        names = sorted(set(channels))
        self._channel_of_arm = np.array([names.index(c) for c in channels])
        self._n_channels = len(names)

    # -- what the planner sees ------------------------------------------------------------
    def _log_factors(self) -> dict[str, np.ndarray]:
        f = self.forecaster
        value = f.factor("ctr") * f.factor("cvr") * f.factor("aov")
        return {
            "price": np.log(np.maximum(f.factor("price"), 1e-6)),
            "value": np.log(np.maximum(value, 1e-6)),
            "traffic": np.log(np.maximum(f.factor("traffic"), 1e-6)),
        }

    def _remaining_plan(self) -> tuple[np.ndarray, float]:
        """GMV per arm the last plan expected after the hour just played, and the GMV the
        ROI target asks of the campaign's planned total spend (before the first plan: the
        whole budget at the target, split evenly)."""
        env = self.env
        last = self.decisions[-1] if self.decisions else None
        if last is not None and last.gmv_by_period is not None:
            gmv = np.maximum(last.gmv_by_period.sum(axis=1) - last.predicted_gmv, 0.0)
            spend = max(last.plan_spend - float(last.planned_spend.sum()), 0.0)
        else:
            share = np.full(env.n_arms, 1.0 / env.n_arms)
            gmv, spend = share * env.budget * env.roi_target, env.budget
        total = max(self.spent + spend, 0.01 * env.budget)
        return gmv, env.roi_target * total

    def roi_uncertainty(self) -> float:
        """Standard deviation of the campaign's remaining GMV, relative to the GMV the ROI
        target asks of the campaign's planned total spend.

        Orders arrive as Poisson counts with gamma-distributed values, so GMV ``g`` still
        to come from an arm with mean order value ``m`` and value CV ``c`` has variance
        ``g * m * (1 + c**2)``, ``g`` per arm as in :meth:`_remaining_plan`, plus the
        GMV of orders already clicked but not yet placed (delayed orders): the ROI so far
        counts it at its expectation, and it is as uncertain as GMV still to be bought.
        """
        prior = self.forecaster.prior
        gmv, required = self._remaining_plan()
        gmv = gmv + self.forecaster.pending_gmv_by_arm(self.t)
        hour = min(self.t, self.env.horizon - 1)
        order_value = prior.aov[hour] * self.forecaster.factor("aov")
        variance = float((gmv * order_value * (1.0 + prior.aov_cv**2)).sum())
        return math.sqrt(variance) / required

    def forecast_shortfall(self) -> float:
        """The remaining GMV the forecasts are likely to overstate, relative to the GMV the
        ROI target asks of the planned total spend: each arm's planned GMV times how far its
        recent realised/predicted ratio (:meth:`~bidder.forecast.Forecaster.value_bias`)
        lies below 1. Zero while the forecasts keep up with the market."""
        gmv, required = self._remaining_plan()
        shortfall = np.maximum(1.0 - self.forecaster.value_bias(), 0.0)
        return float((gmv * shortfall).sum()) / required

    def forecast(self):
        return self.forecaster.forecast(self.t, trend_gain=self._trend_gain)

    def model_errors(self) -> tuple[float, float, float]:
        """How far the bidder's predictions have been from the hours played so far, as
        log(realised / predicted): campaign spend, campaign GMV (with the GMV still to
        arrive from delayed orders), and the worst channel's ROI; 0 before any hour."""
        if not self.decisions:
            return 0.0, 0.0, 0.0
        floor = 1e-3 * self.env.budget / self.env.horizon
        predicted, realised = self._predicted, self._realised
        spend = math.log((realised[0].sum() + floor) / (predicted[0].sum() + floor))
        arrived = realised[1].sum() + self.pending_gmv()
        gmv = math.log((arrived + floor) / (predicted[1].sum() + floor))
        by_channel = np.zeros((4, self._n_channels))
        for row, values in enumerate((*predicted, *realised)):
            by_channel[row] = np.bincount(
                self._channel_of_arm, weights=values, minlength=self._n_channels
            )
        roi_errors = [
            math.log(((rg + floor) / (rs + floor)) / ((pg + floor) / (ps + floor)))
            for ps, pg, rs, rg in by_channel.T
            if ps > floor
        ]
        return spend, gmv, min(roi_errors, default=0.0)

    def bid_variation(self) -> float:
        """Mean over arms of the standard deviation of their log bids so far: how much
        each arm's data can say about its response away from one bid."""
        count, total, squares = self._log_bids
        seen = count >= 2
        if not seen.any():
            return 0.0
        mean = total[seen] / count[seen]
        variance = np.maximum(squares[seen] / count[seen] - mean**2, 0.0)
        return float(np.sqrt(variance).mean())

    def prior_delay_days(self) -> float:
        """The conversion delay the prior measured, mean hours per arm, in days."""
        q = self.forecaster.delay_q
        return float(np.mean(q / np.maximum(1.0 - q, 1e-6))) / 24.0

    def features(self) -> np.ndarray:
        """The planner's observation at the start of the current hour (past data only)."""
        env, budget, target = self.env, self.env.budget, self.env.roi_target
        horizon = env.horizon
        spent_share = self.spent / budget
        elapsed_share = self.t / horizon
        roi = self.gmv / self.spent if self.spent > 0 else target
        angle = 2.0 * math.pi * ((env.scenario.start_hour + self.t) % 24) / 24.0
        last = self.decisions[-1] if self.decisions else None
        hourly_budget = budget / horizon
        last_roi = self.last_gmv / self.last_spend if self.last_spend > 0 else target
        logs = self._log_factors()
        f = self.forecaster
        trends = {
            "value": TREND_SCALE * (f.trend("ctr") + f.trend("cvr") + f.trend("aov")),
            "price": TREND_SCALE * f.trend("price"),
            "traffic": TREND_SCALE * f.trend("traffic"),
        }
        features = [
            1.0 - spent_share,
            1.0 - elapsed_share,
            spent_share - elapsed_share,
            roi / target - 1.0,
            math.sin(angle),
            math.cos(angle),
            float(self._opportunity_left[min(self.t, horizon - 1)]),
            (last.predicted_roi / target - 1.0) if last else 0.0,
            # Spent so far plus what the last plan meant to spend: does MPC use the budget?
            ((self.spent - self.last_spend + last.plan_spend) / budget) if last else 1.0,
            float(last.roi_binding) if last else 0.0,
            (last.roi_slack / budget) if last else 0.0,
            (math.log1p(max(last.budget_dual, 0.0) / target)) if last else 0.0,
            self.last_spend / hourly_budget,
            last_roi / target - 1.0,
            float(logs["price"].mean()),
            float(logs["price"].max()),
            float(logs["value"].mean()),
            float(logs["value"].min()),
            float(logs["traffic"].mean()),
            env.n_arms / 10.0,
            10.0 * self.roi_uncertainty(),
            float(trends["value"].mean()),
            float(trends["value"].min()),
            float(trends["price"].max()),
            float(trends["traffic"].mean()),
            10.0 * self.forecast_shortfall(),
            *(3.0 * e for e in self.model_errors()),
            3.0 * self.bid_variation(),
            self.prior_delay_days(),
        ]
        return np.clip(
            np.nan_to_num(np.array(features, dtype=np.float32)), -FEATURE_BOUND, FEATURE_BOUND
        )

    # -- what the planner decides ---------------------------------------------------------
    def plan_from_action(self, action: np.ndarray | None) -> Plan:
        """The MPC plan for a normalised action in [-1, 1]^3 (and the forecasts' trend).

        * ``roi_risk`` sets the z-score ``NEUTRAL_Z + Z_RANGE * roi_risk`` (-0.5 to 2.5,
          at least ``FINAL_Z / sqrt(hours left)``): the ROI margin is that many
          :meth:`roi_uncertainty` units plus the :meth:`forecast_shortfall`, replacing
          the bidder's own fixed margin (never below 0, at most ``roi_safety +
          ROI_MARGIN_RANGE``).
        * ``trend_tilt`` tilts each arm by ``TILT_RANGE ** (tilt * v)`` where ``v`` is
          the arm's forecast value-per-cost correction relative to the other arms.
        * ``trend_gain`` extrapolates every forecast correction along its recent trend
          (:meth:`bidder.forecast.Forecaster.forecast`): positive bets that a trend the
          forecaster has started to see (a wearing creative, a bid war building up) will
          go on, negative that it will fade. Unlike a tilt it also moves the predictions
          the ROI constraint uses.
        """
        if action is None:
            self._trend_gain = 0.0
            return Plan.neutral()
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=float)), -1.0, 1.0)
        logs = self._log_factors()
        value = logs["value"] - logs["price"]
        relative = np.clip(value - value.mean(), -1.0, 1.0)
        own = self.config.roi_safety
        z = max(
            NEUTRAL_Z + Z_RANGE * float(a[0]),
            FINAL_Z / math.sqrt(max(self.env.horizon - self.t, 1)),
        )
        margin = z * self.roi_uncertainty() + self.forecast_shortfall()
        if not math.isfinite(margin):  # risk that cannot be measured: plan cautiously
            margin = own + ROI_MARGIN_RANGE
        self._trend_gain = float(a[2])
        return Plan(
            tilts=TILT_RANGE ** (a[1] * relative),
            roi_margin=float(np.clip(margin - own, -own, ROI_MARGIN_RANGE)),
        )

    def choose_action(self, features: np.ndarray) -> np.ndarray | None:
        """The planner action for ``features``; the base class keeps the one it was given."""
        return self.action

    def plan(self, observation: np.ndarray) -> Plan:
        return self.plan_from_action(self.choose_action(self.features()))

    def observe(self, info: dict[str, Any]) -> None:
        self.last_spend = float(np.sum(info["spend"]))
        self.last_gmv = float(np.sum(info["gmv"]))
        if self.decisions:
            decision = self.decisions[-1]
            self._predicted[0] += decision.planned_spend
            self._predicted[1] += decision.predicted_gmv
            self._realised[0] += info["spend"]
            self._realised[1] += info["gmv"]
            bids = np.asarray(decision.bids_cpm, dtype=float)
            placed = bids > 0
            logs = np.log(np.where(placed, bids, 1.0))
            self._log_bids += np.stack([placed, logs * placed, logs**2 * placed])
        super().observe(info)


ScenarioSource = Callable[[np.random.Generator], Scenario]


def training_scenarios(
    presets: Sequence[str] | None = None, preset_share: float = 0.5
) -> ScenarioSource:
    """A scenario source for training: a preset with probability ``preset_share``, else a
    fresh randomised market from :func:`envs.sampler.sample_scenario`."""
    names = list(PRESETS) if presets is None else list(presets)
    resolved = [resolve_scenario(name) for name in names]

    def draw(rng: np.random.Generator) -> Scenario:
        if resolved and rng.random() < preset_share:
            return resolved[int(rng.integers(len(resolved)))]
        return sample_scenario(rng)

    return draw


def fixed_scenarios(scenarios: Sequence[Scenario | str]) -> ScenarioSource:
    """A scenario source that cycles through ``scenarios`` in order (for evaluation)."""
    resolved = [resolve_scenario(s) for s in scenarios]
    counter = {"next": 0}

    def draw(rng: np.random.Generator) -> Scenario:
        scenario = resolved[counter["next"] % len(resolved)]
        counter["next"] += 1
        return scenario

    return draw


def check_priors(prior: str | Sequence[str]) -> tuple[str, ...]:
    """The prior kinds of ``prior``: one name, names joined by commas, or a sequence.

    Raises:
        policies.prior.PriorError: an empty list or an unknown name (the message names it).
    """
    from policies.prior import PriorError, check_prior

    names = prior.split(",") if isinstance(prior, str) else list(prior)
    names = [name.strip() for name in names]
    if not names or not all(names):
        raise PriorError(f"prior {prior!r}: give fitted, cold or true, or several joined by commas")
    return tuple(dict.fromkeys(check_prior(name) for name in names))


class PlannerEnv(gym.Env):
    """The ad market seen by the planner: it sets the MPC bidder's plan every hour.

    ## Description
    Each episode is one campaign in a scenario drawn from ``scenario_source`` (presets and
    randomised markets by default). Every hour the agent chooses a plan; the MPC bidder
    (forecasts learned online, as in the ``mpc`` strategy) turns it into bids, and the
    market (:class:`~envs.AdMarketEnv`) plays the hour.

    ## Action Space
    ``Box(-1, 1, (3,), float32)``: :data:`ACTION_NAMES` (see
    :meth:`PlannedMPCStrategy.plan_from_action`).

    ## Observation Space
    ``Box(-5, 5, (F,), float32)``: the ``features`` named (by default all of
    :data:`FEATURE_NAMES`, 31), the same for any number of arms.

    ## Rewards
    The market's reward divided by ``budget * roi_target``: the episode's return is the
    campaign's score (``GMV * min(1, ROI / target) ** 2``) in units of the GMV a campaign
    that spends its whole budget exactly at the target would make, so campaigns of any
    size weigh alike.

    With ``relative_to_mpc``, MPC alone first plays the same campaign on the same market
    draw (common random numbers), and each hour's reward has MPC alone's normalised GMV of
    that hour subtracted (the rest of its day and its score adjustment on the last step):
    the return becomes the policy's gain over MPC alone, which removes most of the
    variance that market noise and scenario difficulty put into the return, and the
    value still to come at any hour is a small difference rather than the rest of a
    day's GMV, which the critic could only guess. The optimal policy is unchanged: the
    subtracted amounts do not depend on the actions. With
    ``roi_miss_penalty``, a campaign that ends below its ROI target loses that much more,
    because advertisers judge a missed target beyond what the score's quadratic term says.

    ## Starting State
    A fresh campaign in a fresh scenario and market drawn from ``self.np_random``.

    ## Episode End
    Terminated when the campaign ends (its horizon, or the budget spent).

    ## Arguments
    ``scenario_source``: a function of a numpy Generator returning a Scenario;
    ``scenario``: a single scenario or preset name instead (every episode in it);
    ``relative_to_mpc``: subtract MPC alone's normalised score (see Rewards);
    ``roi_miss_penalty``: extra loss of a campaign that misses its ROI target;
    ``prior``: what the bidder knows beforehand (``policies.prior``: ``fitted``,
    ``cold`` or ``true``), or several of them (a sequence, or names joined by commas):
    each campaign then gets one of them at random, so the policy meets wrong priors;
    ``features``: the names of :data:`FEATURE_NAMES` the agent observes, in order
    (:data:`BASE_FEATURES` for policies trained before the model-judging features);
    ``pool``: 0 draws a fresh campaign for every episode; ``N`` draws ``N`` campaigns
    (scenario, market seed, prior) once, from this environment's seed, and plays one of
    them at random each episode. Their priors (a fitted one simulates and fits two weeks
    of logs, about 0.3 s) and MPC alone's baseline (a whole extra campaign) are computed
    the first time a campaign is played and kept, so a pool trains the same policy in a
    fraction of the time when each campaign is played several times.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenario_source: ScenarioSource | None = None,
        scenario: Scenario | str | None = None,
        relative_to_mpc: bool = False,
        roi_miss_penalty: float = 0.0,
        prior: str | Sequence[str] = "true",
        pool: int = 0,
        features: Sequence[str] = FEATURE_NAMES,
        baselines: dict | None = None,
    ):
        self.feature_names = tuple(features)
        #: MPC alone's result per (scenario, market seed, prior), the caller's to share
        #: between environments that replay the same campaigns (the evaluation days of a
        #: training run); ``None`` computes it at every reset (without a pool).
        self._baselines = baselines
        self._features = feature_indices(self.feature_names)
        self.priors = check_priors(prior)
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0:
            raise ValueError(f"pool {pool!r}: give a whole number of campaigns, 0 for none")
        self.pool = pool
        self._pool_seed: int | None = None
        # Per pool campaign: (scenario, market seed, prior, prior market, baseline steps).
        self._cache: dict[int, tuple[Scenario, int, str, EpisodeMarket | None, np.ndarray]] = {}
        self.relative_to_mpc = relative_to_mpc
        self.roi_miss_penalty = roi_miss_penalty
        if scenario is not None:
            fixed = resolve_scenario(scenario)
            scenario_source = lambda rng: fixed  # noqa: E731 - a one-line source
        self.scenario_source = scenario_source or training_scenarios()
        self.observation_space, self.action_space = planner_spaces(len(self._features))
        self.strategy = PlannedMPCStrategy()
        self._alone = MPCStrategy()  # MPC alone, the baseline (kept: it reuses its bidders)
        self.market_env: AdMarketEnv | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self.pool:
            scenario, market_seed, prior, knowledge, steps = self._pool_campaign()
        else:
            scenario, market_seed, prior, knowledge = self._draw_campaign(self.np_random)
            key = (scenario, market_seed, prior, self.relative_to_mpc)
            if self._baselines is not None and key in self._baselines:
                steps = self._baselines[key]
            else:
                steps = self._baseline_of(scenario, market_seed, prior, knowledge)
                if self._baselines is not None:
                    self._baselines[key] = steps
        self.market_env = AdMarketEnv(scenario)
        self._market_obs, _ = self.market_env.reset(seed=market_seed)
        self.strategy.reset(self.market_env, knowledge)
        self._scale = self.market_env.budget * self.market_env.roi_target
        # MPC alone's normalised GMV per hour, then its end-of-day score adjustment.
        self._baseline_steps = steps
        self._baseline = float(steps.sum())
        observation = self.strategy.features()[self._features]
        return observation, {"scenario": scenario.name, "prior": prior}

    def _draw_campaign(
        self, rng: np.random.Generator
    ) -> tuple[Scenario, int, str, EpisodeMarket | None]:
        """A scenario, a market seed and a prior kind drawn from ``rng``, and that prior."""
        scenario = self.scenario_source(rng)
        market_seed = int(rng.integers(2**31))
        # One prior draws nothing more, so a single-prior run keeps its seeds' campaigns.
        prior = self.priors[0]
        if len(self.priors) > 1:
            prior = self.priors[int(rng.integers(len(self.priors)))]
        knowledge = None
        if prior != "true":
            from policies.prior import prior_market

            knowledge = prior_market(scenario, prior, market_seed)
        return scenario, market_seed, prior, knowledge

    def _baseline_of(
        self, scenario: Scenario, market_seed: int, prior: str, knowledge: EpisodeMarket | None
    ) -> np.ndarray:
        """MPC alone's normalised GMV per hour of the campaign, its score adjustment last
        (zeros without ``relative_to_mpc``)."""
        horizon = scenario.horizon_hours
        steps = np.zeros(horizon + 1)
        if not self.relative_to_mpc:
            return steps
        from policies.evaluate import run_episode

        scale = scenario.budget * scenario.roi_target
        alone = run_episode(self._alone, scenario, market_seed, prior, prior_market=knowledge)
        hourly = alone.trace["gmv"].sum(axis=1) / scale
        steps[: len(hourly)] = hourly
        steps[-1] = alone.score / scale - hourly.sum()
        return steps

    def _pool_campaign(self) -> tuple[Scenario, int, str, EpisodeMarket | None, np.ndarray]:
        """One of the pool's campaigns, at random; drawn and cached the first time."""
        if self._pool_seed is None:
            self._pool_seed = int(self.np_random.integers(2**63))
        index = int(self.np_random.integers(self.pool))
        if index not in self._cache:
            rng = np.random.default_rng([self._pool_seed, index])
            campaign = self._draw_campaign(rng)
            self._cache[index] = (*campaign, self._baseline_of(*campaign))
        return self._cache[index]

    def step(self, action: np.ndarray):
        if self.market_env is None:
            raise RuntimeError("call reset() before step()")
        market = self.market_env
        self.strategy.action = np.asarray(action, dtype=float)
        bids = self.strategy.act(self._market_obs)
        self._market_obs, reward, terminated, truncated, info = market.step(
            market.bids_to_action(bids)
        )
        out_info = {"scenario": market.scenario.name}
        self.strategy.observe(info)
        # Hour by hour, what MPC alone made in the same hour of the same draw is subtracted
        # (the rest of its day, and its score adjustment, when the campaign ends).
        reward = reward / self._scale - self._baseline_steps[market.t - 1]
        if terminated:
            reward -= self._baseline_steps[market.t :].sum()
            missed = market.gmv_total < market.roi_target * market.spent * (1.0 - 1e-9)
            out_info["score"] = info["score"]
            out_info["normalised_score"] = info["score"] / self._scale
            out_info["roi_missed"] = missed
            if self.relative_to_mpc:
                out_info["mpc_normalised_score"] = self._baseline
            if missed:
                reward -= self.roi_miss_penalty
        return (
            self.strategy.features()[self._features],
            float(reward),
            terminated,
            truncated,
            out_info,
        )
