"""Run strategies on scenarios with common random numbers and summarise the results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from envs import AdMarketEnv, Scenario, score
from envs.errors import InputError
from envs.market import EpisodeMarket
from envs.market_env import resolve_scenario
from envs.sampler import Perturbation
from policies.strategy import Strategy

#: Per-arm figures recorded every hour of an episode.
TRACE_FIGURES = (
    "bid_cpm",
    "spend",
    "impressions",
    "clicks",
    "orders",
    "gmv",
    "win_rate",
    "clearing_cpm",
)
#: Figures recorded only where the market has them (commission channels).
OPTIONAL_TRACE_FIGURES = ("commission_rate", "commission")


@dataclass
class EpisodeResult:
    """One strategy's episode: totals and the hourly per-arm trace (arrays of shape (T, K))."""

    strategy: str
    scenario: str
    seed: int
    budget: float
    roi_target: float
    spend: float
    gmv: float
    trace: dict[str, np.ndarray] = field(repr=False)
    arm_names: list[str] = field(repr=False)
    hour_of_day: np.ndarray = field(repr=False)
    prior: str = "true"
    #: Per arm, the delayed orders (and their GMV) that arrived after the last hour,
    #: within ``late_window_hours`` of it; ``None`` where orders are not delayed.
    late_orders: np.ndarray | None = field(default=None, repr=False)
    late_gmv: np.ndarray | None = field(default=None, repr=False)
    late_window_hours: int = 0

    @property
    def roi(self) -> float:
        return self.gmv / self.spend if self.spend > 0 else 0.0

    @property
    def score(self) -> float:
        return score(self.gmv, self.spend, self.roi_target)

    @property
    def budget_violated(self) -> bool:
        return self.spend > self.budget

    @property
    def roi_missed(self) -> bool:
        # A campaign that spent nothing cannot miss its ROI target.
        return self.spend > 0 and self.roi < self.roi_target * (1.0 - 1e-9)


def run_episode(
    strategy: Strategy,
    scenario: Scenario | str,
    seed: int,
    prior: str = "true",
    prior_market: EpisodeMarket | None = None,
) -> EpisodeResult:
    """Play one episode of ``scenario`` with ``strategy``; the seed fixes the market.

    ``prior`` is what the strategy knows beforehand (:mod:`policies.prior`), built for
    this scenario and seed unless ``prior_market`` gives it (``prior`` then labels it).
    This low-level function defaults to ``true`` (the research setting, which needs no
    history); :func:`evaluate_many` and every command default to ``fitted``.
    """
    from policies.prior import check_prior
    from policies.prior import prior_market as build_prior

    check_prior(prior)
    env = AdMarketEnv(resolve_scenario(scenario))
    knowledge = prior_market
    if knowledge is None and prior != "true":
        knowledge = build_prior(env.scenario, prior, seed)
    observation, info = env.reset(seed=seed)
    if knowledge is None:
        strategy.reset(env)  # strategies written before priors take the environment only
    else:
        strategy.reset(env, knowledge)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in TRACE_FIGURES}
    hours = []
    terminated = False
    while not terminated:
        action, _ = strategy.predict(observation, deterministic=True)
        observation, _, terminated, _, info = env.step(action)
        strategy.observe(info)
        hours.append(info["hour_of_day"])
        for name in TRACE_FIGURES:
            rows[name].append(np.asarray(info[name], dtype=float))
        for name in OPTIONAL_TRACE_FIGURES:
            if name in info:
                rows.setdefault(name, []).append(np.asarray(info[name], dtype=float))
    # Delayed orders that arrive after the last hour, within the attribution window, and
    # the commission their sales cost then.
    late_gmv = float(np.sum(info.get("late_gmv", 0.0)))
    late_commission = float(np.sum(info.get("late_commission", 0.0)))
    return EpisodeResult(
        strategy=strategy.name,
        scenario=env.scenario.name,
        seed=seed,
        budget=env.budget,
        roi_target=env.roi_target,
        spend=float(np.sum(rows["spend"])) + late_commission,
        gmv=float(np.sum(rows["gmv"])) + late_gmv,
        trace={name: np.array(values) for name, values in rows.items()},
        arm_names=env.arm_names,
        hour_of_day=np.array(hours),
        prior=prior,
        late_orders=(
            np.asarray(info["late_orders"], dtype=float) if "late_orders" in info else None
        ),
        late_gmv=np.asarray(info["late_gmv"], dtype=float) if "late_gmv" in info else None,
        late_window_hours=env.hours_to_close,
    )


@dataclass
class StrategySummary:
    """One strategy's figures on one scenario over the evaluated episodes."""

    episodes: list[EpisodeResult]

    def as_dict(self, oracle_score: float | None) -> dict[str, float | int | None]:
        scores = np.array([e.score for e in self.episodes])
        gmv = np.array([e.gmv for e in self.episodes])
        spend = np.array([e.spend for e in self.episodes])
        roi = np.array([e.roi for e in self.episodes])
        score_mean = float(scores.mean())
        return {
            "episodes": len(self.episodes),
            "score_mean": score_mean,
            "score_std": float(scores.std()),
            "gmv_mean": float(gmv.mean()),
            "spend_mean": float(spend.mean()),
            "roi_mean": float(roi.mean()),
            "budget_violations": int(sum(e.budget_violated for e in self.episodes)),
            "roi_violation_rate": float(np.mean([e.roi_missed for e in self.episodes])),
            "pct_of_oracle": (100.0 * score_mean / oracle_score) if oracle_score else None,
        }


#: What each prior mode means, for every printed output.
PRIOR_LABELS = {
    "fitted": "strategies start from a market fitted to 14 days of simulated logs",
    "cold": "strategies start from channel averages, as for a new product",
    "true": "RESEARCH ONLY: strategies were given the true shock-free market",
}


#: The longest campaign an evaluation plays: the clairvoyant oracle, which every
#: evaluation runs, solves the whole horizon at once, and its time grows faster than the
#: horizon (measured: 7.7 s for 168 hours, 32 s for 336, 129 s for 672, one episode).
MAX_EVALUATE_HOURS = 24 * 14


def check_horizons(scenarios: list[Scenario]) -> None:
    """Refuse scenarios longer than :data:`MAX_EVALUATE_HOURS` before any episode runs.

    Raises:
        InputError: names the scenario, its horizon and the limit.
    """
    for scenario in scenarios:
        if scenario.horizon_hours > MAX_EVALUATE_HOURS:
            raise InputError(
                f"scenario {scenario.name!r}: horizon_hours = {scenario.horizon_hours} is over "
                f"the {MAX_EVALUATE_HOURS} hours (14 days) an evaluation plays; shorten it, or "
                "play it day by day with `autopilot simulate`"
            )


def evaluate_many(
    strategies: list[str],
    scenarios: list[Scenario | str],
    episodes: int,
    seed: int = 0,
    progress: bool = False,
    strategy_kwargs: dict[str, dict] | None = None,
    prior: str = "fitted",
    on_episode: Callable[[int, int], None] | None = None,
    perturbation: Perturbation | None = None,
) -> dict:
    """Every strategy on every scenario over the same seeds (common random numbers).

    The oracle is always run, so that ``pct_of_oracle`` exists whether or not it was
    asked for; it appears among the strategies only when asked for. Every other
    strategy starts from ``prior`` (:mod:`policies.prior`); each scenario's block records
    it as ``"prior"``. ``on_episode(done, total)`` is called after each episode (every
    strategy's, the oracle's included), for progress reports.

    Returns:
        ``{"seed", "episodes", "scenarios": {NAME: {"strategies": {S: summary}}}}`` and,
        under the private key ``"_results"``, the episode results for plots.
    """
    from tqdm import tqdm

    from policies.prior import check_prior
    from policies.strategy import make_strategy

    check_prior(prior)
    strategy_kwargs = strategy_kwargs or {}
    to_run = list(dict.fromkeys(list(strategies) + ["oracle"]))
    scenario_objects = [resolve_scenario(s) for s in scenarios]
    check_horizons(scenario_objects)
    # Build every strategy first so that a bad name fails before any long run.
    runners = {name: make_strategy(name, **strategy_kwargs.get(name, {})) for name in to_run}
    total = len(scenario_objects) * episodes * len(to_run)
    bar = tqdm(total=total, disable=not progress, desc="evaluating", unit="episode")
    report: dict = {"seed": seed, "episodes": episodes, "prior": prior, "scenarios": {}}
    if perturbation is not None:
        report["perturbation"] = perturbation.describe()
    results: dict[str, dict[str, list[EpisodeResult]]] = {}
    done = 0
    for scenario in scenario_objects:
        per_strategy: dict[str, list[EpisodeResult]] = {name: [] for name in to_run}
        for episode in range(episodes):
            market = (
                scenario
                if perturbation is None
                else perturbation.for_seed(scenario, seed + episode)
            )
            for name, strategy in runners.items():
                bar.set_postfix_str(f"{scenario.name} / {name}")
                per_strategy[name].append(run_episode(strategy, market, seed + episode, prior))
                bar.update()
                done += 1
                if on_episode is not None:
                    on_episode(done, total)
        oracle_score = float(np.mean([e.score for e in per_strategy["oracle"]]))
        report["scenarios"][scenario.name] = {
            "budget": scenario.budget,
            "roi_target": scenario.roi_target,
            "prior": prior,
            "strategies": {
                name: StrategySummary(per_strategy[name]).as_dict(oracle_score)
                for name in strategies
            },
        }
        results[scenario.name] = per_strategy
    bar.close()
    report["_results"] = results
    return report


def format_table(report: dict) -> str:
    """The evaluation as a plain-text table, one block per scenario."""
    lines = []
    prior = report.get("prior")
    if prior is not None:
        lines.append(f"prior: {prior} ({PRIOR_LABELS[prior]})")
    perturbation = report.get("perturbation")
    if perturbation is not None:
        within = (
            f"; {perturbation['intervals']} parameters within their fitted intervals"
            if perturbation["intervals"]
            else ""
        )
        lines.append(
            "markets: drawn around each scenario, one per episode (parameters times a "
            f"factor in [1/{perturbation['factor']:g}, {perturbation['factor']:g}]{within})"
        )
    for name, block in report["scenarios"].items():
        lines.append(f"{name}  (budget {block['budget']:,.0f}, ROI target {block['roi_target']:g})")
        lines.append(
            f"  {'strategy':<14}{'score':>12}{'% oracle':>10}{'GMV':>12}{'spend':>11}"
            f"{'ROI':>7}{'ROI missed':>12}{'overspent':>11}"
        )
        lines.append(
            f"  {'':<14}{'mean':>12}{'':>10}{'mean':>12}{'mean':>11}"
            f"{'mean':>7}{'% of days':>12}{'days':>11}"
        )
        for strategy, row in block["strategies"].items():
            pct = row["pct_of_oracle"]
            lines.append(
                f"  {strategy:<14}{row['score_mean']:>12,.0f}"
                f"{(f'{pct:.1f}%' if pct is not None else '-'):>10}"
                f"{row['gmv_mean']:>12,.0f}{row['spend_mean']:>11,.0f}{row['roi_mean']:>7.2f}"
                f"{100 * row['roi_violation_rate']:>11.0f}%{row['budget_violations']:>11d}"
            )
        lines.append("")
    return "\n".join(lines)
