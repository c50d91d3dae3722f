"""Quality of every strategy against the clairvoyant oracle, on presets and unseen markets.

Every preset is played for ``--episodes`` seeded days, and ``--episodes`` randomised
markets drawn from a seed stream that training never uses make up the ``held-out``
block (one day each). All strategies play the same days (common random numbers).
``pct_of_oracle`` is the strategy's mean score over the oracle's mean score, in percent;
for the held-out block, whose markets differ in size, ``pct_of_oracle_per_episode`` (the
mean of per-day ratios) is also given. ``pct_of_mpc`` compares with MPC alone the same
way, with ``pct_of_mpc_se``, the standard error of that paired comparison (the market
gives every strategy the same luck hour by hour, so day-to-day noise mostly cancels).

Usage::

    python bench/quality.py --json bench/results/quality.json [--episodes 50] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from envs.io import atomic_write_text
from envs.presets import PRESETS, SHOCK_PRESETS
from envs.sampler import sample_scenario
from envs.scenario import Scenario
from policies.evaluate import StrategySummary, run_episode
from policies.strategy import make_strategy

STRATEGIES = ("even", "proportional", "pid", "online-lp", "mpc", "ppo-mpc", "oracle")
#: Root of the held-out scenario stream; training draws scenarios from environment seeds,
#: never from this entropy, so these markets were never seen in training.
HELD_OUT_ENTROPY = 20_261_124
HELD_OUT = "held-out"


def held_out_scenarios(count: int) -> list[Scenario]:
    """``count`` randomised markets from the held-out stream, the same on every run."""
    return [
        sample_scenario(
            np.random.default_rng(np.random.SeedSequence([HELD_OUT_ENTROPY, i])),
            name=f"held-out-{i}",
        )
        for i in range(count)
    ]


def paired_vs(runs: list, baseline: list) -> dict[str, float]:
    """``runs``' mean score in percent of ``baseline``'s on the same days, and the
    standard error of that figure from the per-day differences."""
    mine = np.array([e.score for e in runs])
    theirs = np.array([e.score for e in baseline])
    base = max(float(theirs.mean()), 1e-12)
    diff = mine - theirs
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return {"pct_of_mpc": 100.0 * float(mine.mean()) / base, "pct_of_mpc_se": 100.0 * se / base}


def _play(task: tuple[str, list[tuple[Scenario, int]], str | None]) -> list:
    """Play one strategy over (scenario, seed) days; run in a worker process."""
    name, days, policy = task
    strategy = make_strategy(name, **({"path": policy} if name == "ppo-mpc" and policy else {}))
    results = []
    for scenario, seed in days:
        result = run_episode(strategy, scenario, seed)
        result.trace = {}  # keep what crosses the process boundary small
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--episodes",
        type=int,
        default=50,
        help="days per preset and held-out markets (default: 50)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 episodes, for a fast look (overrides --episodes)"
    )
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument(
        "--policy", default=None, help="ppo-mpc policy .safetensors (default: shipped)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first preset day")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    episodes = 5 if args.quick else args.episodes
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if "oracle" not in strategies:
        strategies.append("oracle")

    blocks: dict[str, list[tuple[Scenario, int]]] = {}
    for name in PRESETS:
        from envs.presets import get_scenario

        blocks[name] = [(get_scenario(name), args.seed + e) for e in range(episodes)]
    blocks[HELD_OUT] = [(sc, 7_000 + i) for i, sc in enumerate(held_out_scenarios(episodes))]

    started = time.perf_counter()
    # One task per (block, strategy, half): enough tasks to keep every worker busy.
    tasks, keys = [], []
    for block, days in blocks.items():
        for strategy in strategies:
            for part in range(2):
                tasks.append((strategy, days[part::2], args.policy))
                keys.append((block, strategy, part))
    collected: dict[tuple[str, str], list] = {}
    with ProcessPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        for (block, strategy, part), results in zip(keys, pool.map(_play, tasks), strict=True):
            collected.setdefault((block, strategy), [None] * episodes)
            collected[(block, strategy)][part::2] = results

    report: dict = {"episodes": episodes, "seed": args.seed, "scenarios": {}}
    for block in blocks:
        oracle = collected[(block, "oracle")]
        oracle_mean = float(np.mean([e.score for e in oracle]))
        alone = collected.get((block, "mpc"))
        rows = {}
        for strategy in strategies:
            runs = collected[(block, strategy)]
            row = StrategySummary(runs).as_dict(oracle_mean)
            ratios = [e.score / o.score for e, o in zip(runs, oracle, strict=True) if o.score > 0]
            row["pct_of_oracle_per_episode"] = 100.0 * float(np.mean(ratios))
            if alone is not None:
                row.update(paired_vs(runs, alone))
            rows[strategy] = row
        report["scenarios"][block] = {"strategies": rows}

    summary = {}
    for strategy in strategies:
        preset_pcts = [
            report["scenarios"][p]["strategies"][strategy]["pct_of_oracle"] for p in PRESETS
        ]
        shock_pcts = [
            report["scenarios"][p]["strategies"][strategy]["pct_of_oracle"] for p in SHOCK_PRESETS
        ]
        summary[strategy] = {
            "presets_pct_of_oracle_mean": float(np.mean(preset_pcts)),
            "shock_presets_pct_of_oracle_mean": float(np.mean(shock_pcts)),
            "held_out_pct_of_oracle": report["scenarios"][HELD_OUT]["strategies"][strategy][
                "pct_of_oracle"
            ],
            "held_out_pct_of_oracle_per_episode": report["scenarios"][HELD_OUT]["strategies"][
                strategy
            ]["pct_of_oracle_per_episode"],
            "budget_violations": int(
                sum(
                    b["strategies"][strategy]["budget_violations"]
                    for b in report["scenarios"].values()
                )
            ),
            "roi_violation_rate": float(
                np.mean(
                    [
                        b["strategies"][strategy]["roi_violation_rate"]
                        for b in report["scenarios"].values()
                    ]
                )
            ),
        }
    report["summary"] = summary
    report["wall_s"] = round(time.perf_counter() - started, 1)

    print(
        f"% of oracle's mean score, {episodes} episodes per row "
        f"(held-out: {episodes} unseen randomised markets)"
    )
    print(f"{'scenario':<18}" + "".join(f"{s:>13}" for s in strategies))
    for block, data in report["scenarios"].items():
        print(
            f"{block:<18}"
            + "".join(f"{data['strategies'][s]['pct_of_oracle']:>12.1f}%" for s in strategies)
        )
    print(
        f"{'mean of presets':<18}"
        + "".join(f"{summary[s]['presets_pct_of_oracle_mean']:>12.1f}%" for s in strategies)
    )
    print(
        f"{'ROI missed':<18}"
        + "".join(f"{100 * summary[s]['roi_violation_rate']:>12.1f}%" for s in strategies)
    )
    print(
        f"{'overspent':<18}"
        + "".join(f"{summary[s]['budget_violations']:>13d}" for s in strategies)
    )
    if "mpc" in strategies and "ppo-mpc" in strategies:
        print("\nppo-mpc in % of MPC alone on the same days (+- paired standard error)")
        for block, data in report["scenarios"].items():
            row = data["strategies"]["ppo-mpc"]
            print(f"{block:<18}{row['pct_of_mpc']:>9.2f}% +- {row['pct_of_mpc_se']:.2f}")
    print(f"wall time {report['wall_s']:.0f} s")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
