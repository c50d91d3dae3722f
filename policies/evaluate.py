"""Run strategies on scenarios with common random numbers and summarise the results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from envs import AdMarketEnv, Scenario, score
from envs.market_env import resolve_scenario
from policies.strategy import Strategy

#: Per-arm figures recorded every hour of an episode.
TRACE_FIGURES = ("bid_cpm", "spend", "impressions", "clicks", "orders", "gmv", "win_rate",
                 "clearing_cpm")


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


def run_episode(strategy: Strategy, scenario: Scenario | str, seed: int) -> EpisodeResult:
    """Play one episode of ``scenario`` with ``strategy``; the seed fixes the market."""
    env = AdMarketEnv(resolve_scenario(scenario))
    observation, info = env.reset(seed=seed)
    strategy.reset(env)
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
    return EpisodeResult(
        strategy=strategy.name,
        scenario=env.scenario.name,
        seed=seed,
        budget=env.budget,
        roi_target=env.roi_target,
        spend=float(np.sum(rows["spend"])),
        gmv=float(np.sum(rows["gmv"])),
        trace={name: np.array(values) for name, values in rows.items()},
        arm_names=env.arm_names,
        hour_of_day=np.array(hours),
    )
