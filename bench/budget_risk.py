"""Does the recommendation's spend risk hold in the true market? (``autopilot recommend``)

Simulates 14 days of history per seed, recommends day 15 with and without
``--budget-risk``, and replays each plan's bids in the true market of day 15 many times
with the platform's delivery cap removed (every draw of traffic noise, auctions and
prices), counting how often the uncapped spend exceeds the budget. Prints a table and
writes JSON.

    python bench/budget_risk.py --seeds 0 1 2 --draws 300 --json bench/results/budget_risk.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np

from bidder.recommend import recommend
from envs.io import atomic_write_text
from envs.market import build_episode, sample_hour
from envs.market_env import resolve_scenario
from policies.simulate import day_scenario, simulate_logs

HISTORY_DAYS = 14


def uncapped_spend(scenario, bids: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """Total spend of ``bids`` (24, K) in ``draws`` fresh days of the true market, uncapped."""
    rng = np.random.default_rng(seed)
    totals = np.empty(draws)
    for d in range(draws):
        market = build_episode(scenario, rng)
        exposure = np.zeros(scenario.n_arms)
        total = 0.0
        for t in range(market.horizon):
            hour = sample_hour(market, t, bids[t], exposure, np.inf, rng)
            exposure += hour["impressions"]
            total += float(hour["spend"].sum())
        totals[d] = total
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--strategy", default="mpc", help="strategy that wrote the history")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--risk", type=float, default=0.05)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    scenario = resolve_scenario(args.scenario)
    rows = []
    for seed in args.seeds:
        logs = simulate_logs(scenario, args.strategy, HISTORY_DAYS, seed)
        date = logs["date"].max().date() + dt.timedelta(days=1)
        tomorrow = day_scenario(scenario, HISTORY_DAYS)
        order = [(arm.product, arm.channel) for arm in tomorrow.arms]
        for risk in (None, args.risk):
            rec = recommend(logs, scenario.budget, scenario.roi_target, date, budget_risk=risk)
            table = rec.table.pivot_table(
                index="hour", columns=["product", "channel"], values="bid"
            )
            bids = np.array([[table.loc[h, arm] for arm in order] for h in range(24)])
            spend = uncapped_spend(tomorrow, bids, args.draws, 1000 + seed)
            predicted = rec.summary["spend_risk"]
            rows.append(
                {
                    "seed": seed,
                    "budget_risk": risk,
                    "planned_spend": float(rec.table["planned_spend"].sum()),
                    "predicted_over": predicted["probability_over_budget"],
                    "measured_over": float(np.mean(spend > scenario.budget)),
                    "predicted_p95": predicted["p95"],
                    "measured_p95": float(np.quantile(spend, 0.95)),
                    "measured_mean": float(spend.mean()),
                    "max": float(spend.max()),
                }
            )
    print(f"{'seed':>4} {'risk':>5} {'planned':>9} {'P(over) pred':>12} {'meas':>6} "
          f"{'p95 pred':>9} {'meas':>9} {'mean':>9}")  # fmt: skip
    for r in rows:
        risk = "-" if r["budget_risk"] is None else f"{r['budget_risk']:.2f}"
        print(
            f"{r['seed']:>4} {risk:>5} {r['planned_spend']:>9,.0f} {r['predicted_over']:>12.3f} "
            f"{r['measured_over']:>6.3f} {r['predicted_p95']:>9,.0f} {r['measured_p95']:>9,.0f} "
            f"{r['measured_mean']:>9,.0f}"
        )
    if args.json:
        payload = {"scenario": args.scenario, "draws": args.draws, "rows": rows}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
