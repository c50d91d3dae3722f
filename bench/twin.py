"""Does the market twin rank strategies as the true market does? (``autopilot scenario fit``)

Per preset: simulate 21 days of logs (PID pacing, seed 0 or ``--log-seed``), fit a twin
on the first 18, then evaluate every strategy on the true scenario and on the twin over
the same seeds, with the true prior and the true budget, ROI target and first weekday. Reports each
strategy's score on the twin against the truth, whether the ranking is the same, and the
twin's held-out error (days 19-21 at the logged bids), beside the true scenario's own
error on those days ("truth gmv": what the days' luck leaves to any model). Prints a
table and writes JSON.

    python bench/twin.py --episodes 8 --json bench/results/twin.json
    python bench/twin.py --episodes 8 --perturb 1.3   # markets around the presets
    python bench/twin.py --episodes 4 --sampled 24    # unseen sampled markets
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bidder.twin import fit_scenario, holdout_errors
from envs.io import atomic_write_text
from envs.presets import PRESETS, get_scenario
from envs.sampler import perturb_scenario, sample_scenario
from envs.scenario import Scenario
from policies.evaluate import evaluate_many
from policies.simulate import simulate_logs

DAYS, FIT_DAYS = 21, 18
#: Seed of the market drawn around each preset with ``--perturb``.
PERTURB_SEED = 7
#: ``--sampled N`` plays ``sample_scenario(default_rng(SAMPLED_SEED + i))``, i < N.
SAMPLED_SEED = 1000


def sampled(i: int) -> Scenario:
    """Sampled market ``i``, its products, channels and arms in the order the logs sort
    them (and so the twin's): both then meet the same draws arm by arm."""
    scenario = sample_scenario(np.random.default_rng(SAMPLED_SEED + i), name=f"sampled-{i}")
    return scenario.replace(
        products=tuple(sorted(scenario.products, key=lambda p: p.name)),
        channels=tuple(sorted(scenario.channels, key=lambda c: c.name)),
        arms=tuple(sorted(scenario.arms, key=lambda a: (a.product, a.channel))),
    )


STRATEGIES = ["mpc", "pid", "proportional", "online-lp", "even"]


def one_preset(
    preset: str | Scenario,
    episodes: int,
    strategies: list[str],
    perturb: float = 1.0,
    log_seed: int = 0,
) -> dict:
    truth = preset if isinstance(preset, Scenario) else get_scenario(preset)
    preset = truth.name
    if perturb > 1.0:  # a market around the preset, the same one for a given factor
        truth = perturb_scenario(truth, np.random.default_rng(PERTURB_SEED), perturb)
    logs = simulate_logs(truth, "pid", DAYS, seed=log_seed)
    dates = sorted(logs["date"].unique())
    fit, held = logs[logs["date"].isin(dates[:FIT_DAYS])], logs[logs["date"].isin(dates[FIT_DAYS:])]
    twin = fit_scenario(
        fit, budget=truth.budget, roi_target=truth.roi_target, start_weekday=truth.start_weekday
    )
    scores = {}
    for name, scenario in (("truth", truth), ("twin", twin.scenario)):
        report = evaluate_many(strategies, [scenario], episodes, 0, prior="true")
        block = next(iter(report["scenarios"].values()))["strategies"]
        scores[name] = {s: block[s]["score_mean"] for s in strategies}
    gap = {s: scores["twin"][s] / scores["truth"][s] - 1.0 for s in strategies}
    rank = {n: sorted(strategies, key=lambda s: -scores[n][s]) for n in scores}
    campaign = holdout_errors(
        twin.scenario, held, truth.budget, orders_carry_over=twin.fitted.orders_carry_over
    ).query("product == '*'")
    # The truth's own prediction of the same days: the floor the days' luck sets.
    floor = holdout_errors(truth, held, truth.budget).query("product == '*'")
    return {
        "preset": preset,
        "scores": scores,
        "gap": gap,
        "max_abs_gap": max(abs(g) for g in gap.values()),
        "rank_truth": rank["truth"],
        "rank_twin": rank["twin"],
        "same_rank": rank["truth"] == rank["twin"],
        "holdout_spend_error": float(campaign["spend_error"].abs().max()),
        "holdout_gmv_error": float(campaign["gmv_error"].abs().max()),
        "truth_holdout_spend_error": float(floor["spend_error"].abs().max()),
        "truth_holdout_gmv_error": float(floor["gmv_error"].abs().max()),
        "excluded_days": twin.excluded_days,
        "shocks_fitted": len(twin.scenario.shocks),
        "shock_kinds": {
            "truth": [s.kind for s in truth.shocks],
            "twin": [s.kind for s in twin.scenario.shocks],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--log-seed", type=int, default=0, help="seed of the simulated history (default 0)"
    )
    parser.add_argument(
        "--perturb",
        type=float,
        default=1.0,
        metavar="F",
        help="play a market drawn around each preset (every parameter moved by up to a "
        "factor F, envs.sampler.perturb_scenario) instead of the preset itself",
    )
    parser.add_argument(
        "--sampled",
        type=int,
        default=0,
        metavar="N",
        help="play N sampled markets (envs.sampler.sample_scenario, seeds 1000 on) "
        "instead of the presets",
    )
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    markets = [sampled(i) for i in range(args.sampled)] if args.sampled else args.presets
    rows = []
    start = time.perf_counter()
    print(
        f"{'preset':<20}{'mpc gap':>9}{'max gap':>9}{'rank':>7}{'held spend':>12}{'held gmv':>10}"
        f"{'truth gmv':>11}"
    )
    for market in markets:
        row = one_preset(market, args.episodes, strategies, args.perturb, args.log_seed)
        rows.append(row)
        print(
            f"{row['preset']:<20}{row['gap']['mpc']:>+9.1%}{row['max_abs_gap']:>9.1%}"
            f"{'same' if row['same_rank'] else 'diff':>7}"
            f"{row['holdout_spend_error']:>12.1%}{row['holdout_gmv_error']:>10.1%}"
            f"{row['truth_holdout_gmv_error']:>11.1%}",
            flush=True,
        )
    within = sum(r["max_abs_gap"] <= 0.05 for r in rows)
    same = sum(r["same_rank"] for r in rows)
    mpc_within = sum(abs(r["gap"]["mpc"]) <= 0.05 for r in rows)
    print(
        f"every strategy within 5%: {within}/{len(rows)}; MPC within 5%: {mpc_within}/"
        f"{len(rows)}; same ranking: {same}/{len(rows)}; median max gap "
        f"{np.median([r['max_abs_gap'] for r in rows]):.1%} ({time.perf_counter() - start:.0f} s)"
    )
    if args.json is not None:
        summary = {
            "episodes": args.episodes,
            "strategies": strategies,
            "perturb": args.perturb,
            "log_seed": args.log_seed,
            "sampled": args.sampled,
            "presets": rows,
        }
        atomic_write_text(args.json, json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
