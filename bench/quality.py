"""Quality of every strategy against the clairvoyant oracle, on presets and unseen markets.

Every preset (the eight classic ones and the six of the market mechanisms) is played for
``--episodes`` seeded days, and ``--episodes`` randomised markets drawn from a seed stream
that training never uses make up the ``held-out`` block (one day each). All strategies
play the same days (common random numbers), once per prior mode (``--priors``: what every
strategy but the clairvoyant oracle knows beforehand, ``policies.prior``); one table per
mode.
``pct_of_oracle`` is the strategy's mean score over the oracle's mean score, in percent;
for the held-out block, whose markets differ in size, ``pct_of_oracle_per_episode`` (the
mean of per-day ratios) is also given. ``pct_of_mpc`` compares with MPC alone the same
way, with ``pct_of_mpc_se``, the standard error of that paired comparison (the market
gives every strategy the same luck hour by hour, so day-to-day noise mostly cancels).

Usage::

    python bench/quality.py --json bench/results/quality.json [--episodes 50] [--quick]
        [--priors true,fitted,cold] [--presets a,b] [--no-held-out] [--commission-delay H]
        [--explore X]
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
from envs.presets import CLASSIC_PRESETS, MECHANISM_PRESETS, PRESETS, SHOCK_PRESETS
from envs.sampler import sample_scenario
from envs.scenario import Scenario
from policies.evaluate import PRIOR_LABELS, StrategySummary, run_episode
from policies.prior import PRIOR_MODES, check_prior, prior_market
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


def held_out_days(count: int) -> list[tuple[Scenario, int]]:
    """The held-out block's days: each held-out market once, with its own seed."""
    return [(sc, 7_000 + i) for i, sc in enumerate(held_out_scenarios(count))]


#: Each block's days are split into this many tasks: enough to keep every worker busy.
PARTS = 5


def day_parts(blocks: dict[str, list[tuple[Scenario, int]]]):
    """``(block, part, days)`` for every non-empty ``PARTS``-th of each block's days
    (days ``part``, ``part + PARTS``, ...), the tasks a process pool plays."""
    for block, days in blocks.items():
        for part in range(PARTS):
            if days[part::PARTS]:
                yield block, part, days[part::PARTS]


def with_commission_delay(scenario: Scenario, hours: float) -> Scenario:
    """``scenario`` with every commission channel's orders delayed ``hours`` on average."""
    import dataclasses

    channels = tuple(
        dataclasses.replace(c, order_delay_hours=hours) if c.commission else c
        for c in scenario.channels
    )
    return scenario.replace(channels=channels)


def paired_vs(runs: list, baseline: list) -> dict[str, float]:
    """``runs``' mean score in percent of ``baseline``'s on the same days, and the
    standard error of that figure from the per-day differences."""
    mine = np.array([e.score for e in runs])
    theirs = np.array([e.score for e in baseline])
    base = max(float(theirs.mean()), 1e-12)
    diff = mine - theirs
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return {"pct_of_mpc": 100.0 * float(mine.mean()) / base, "pct_of_mpc_se": 100.0 * se / base}


def _play(task: tuple) -> dict:
    """Play every strategy under every prior over (scenario, seed) days, in a worker.

    The oracle plays each day once (it knows the truth whatever the prior); each prior is
    built once per day and shared by the strategies.
    """
    days, strategies, priors, policy, explore = task

    def options(name: str) -> dict:
        if name == "ppo-mpc" and policy:
            return {"path": policy}
        if name == "mpc" and explore:
            from bidder.mpc import MPCConfig

            return {"config": MPCConfig(explore=explore)}
        return {}

    players = {name: make_strategy(name, **options(name)) for name in strategies}
    out: dict = {("oracle", None): []}
    for scenario, seed in days:
        result = run_episode(players["oracle"], scenario, seed)
        result.trace = {}  # keep what crosses the process boundary small
        out[("oracle", None)].append(result)
        for mode in priors:
            knowledge = prior_market(scenario, mode, seed)
            for name, strategy in players.items():
                if name == "oracle":
                    continue
                result = run_episode(strategy, scenario, seed, mode, prior_market=knowledge)
                result.trace = {}
                out.setdefault((name, mode), []).append(result)
    return out


def _summary(blocks: dict, strategies: list[str]) -> dict:
    def mean_pct(names, strategy):
        # With --presets, a group may be partly or not at all played (NaN then).
        values = [blocks[n]["strategies"][strategy]["pct_of_oracle"] for n in names if n in blocks]
        return float(np.mean(values)) if values else float("nan")

    def held_out(strategy, key):
        block = blocks.get(HELD_OUT)
        return None if block is None else block["strategies"][strategy][key]

    summary = {}
    for strategy in strategies:
        summary[strategy] = {
            "classic_presets_pct_of_oracle_mean": mean_pct(CLASSIC_PRESETS, strategy),
            "mechanism_presets_pct_of_oracle_mean": mean_pct(MECHANISM_PRESETS, strategy),
            "shock_presets_pct_of_oracle_mean": mean_pct(SHOCK_PRESETS, strategy),
            "held_out_pct_of_oracle": held_out(strategy, "pct_of_oracle"),
            "held_out_pct_of_oracle_per_episode": held_out(strategy, "pct_of_oracle_per_episode"),
            "budget_violations": int(
                sum(b["strategies"][strategy]["budget_violations"] for b in blocks.values())
            ),
            "roi_violation_rate": float(
                np.mean([b["strategies"][strategy]["roi_violation_rate"] for b in blocks.values()])
            ),
        }
    return summary


def _print_table(mode: str, blocks: dict, summary: dict, strategies: list[str]) -> None:
    print(f"\nprior: {mode} ({PRIOR_LABELS[mode]})")
    print("% of the oracle's mean score (ROI target missed on % of days)")
    print(f"{'scenario':<20}" + "".join(f"{s:>16}" for s in strategies))
    for block, data in blocks.items():
        cells = []
        for s in strategies:
            row = data["strategies"][s]
            cells.append(
                f"{row['pct_of_oracle']:>8.1f}% ({100 * row['roi_violation_rate']:>3.0f}%)"
            )
        print(f"{block:<20}" + "".join(f"{c:>16}" for c in cells))
    for label, key in (
        ("classic mean", "classic_presets_pct_of_oracle_mean"),
        ("mechanisms mean", "mechanism_presets_pct_of_oracle_mean"),
    ):
        print(f"{label:<20}" + "".join(f"{summary[s][key]:>15.1f}%" for s in strategies))
    print(
        f"{'ROI missed':<20}"
        + "".join(f"{100 * summary[s]['roi_violation_rate']:>15.1f}%" for s in strategies)
    )
    print(
        f"{'overspent':<20}"
        + "".join(f"{summary[s]['budget_violations']:>16d}" for s in strategies)
    )


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
        "--priors",
        default=",".join(PRIOR_MODES),
        help=f"prior modes, one table each (default: {','.join(PRIOR_MODES)})",
    )
    parser.add_argument(
        "--policy", default=None, help="ppo-mpc policy .safetensors (default: shipped)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first preset day")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--presets",
        default=None,
        help="comma-separated presets to play (default: every preset and the held-out block)",
    )
    parser.add_argument(
        "--no-held-out", action="store_true", help="leave out the held-out randomised markets"
    )
    parser.add_argument(
        "--explore",
        type=float,
        default=0.0,
        help="MPC alone varies its bids by exp(+-X) hour by hour (MPCConfig.explore)",
    )
    parser.add_argument(
        "--commission-delay",
        type=float,
        default=None,
        metavar="HOURS",
        help="play the presets with their commission channels' orders (and so the "
        "commission paid) arriving this many hours after the click, on average",
    )
    args = parser.parse_args(argv)
    episodes = 5 if args.quick else args.episodes
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    priors = [check_prior(p.strip()) for p in args.priors.split(",") if p.strip()]
    if "oracle" not in strategies:
        strategies.append("oracle")

    from envs.presets import get_scenario

    blocks: dict[str, list[tuple[Scenario, int]]] = {}
    names = list(PRESETS) if args.presets is None else [p.strip() for p in args.presets.split(",")]
    for name in names:
        scenario = get_scenario(name)
        if args.commission_delay is not None:
            scenario = with_commission_delay(scenario, args.commission_delay)
        blocks[name] = [(scenario, args.seed + e) for e in range(episodes)]
    if not args.no_held_out and args.presets is None:
        blocks[HELD_OUT] = held_out_days(episodes)

    started = time.perf_counter()
    tasks, keys = [], []
    for block, part, days in day_parts(blocks):
        tasks.append((days, strategies, priors, args.policy, args.explore))
        keys.append((block, part))
    collected: dict[tuple[str, str, str | None], list] = {}
    with ProcessPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        for (block, part), results in zip(keys, pool.map(_play, tasks), strict=True):
            for (strategy, mode), runs in results.items():
                slot = collected.setdefault((block, strategy, mode), [None] * episodes)
                slot[part::PARTS] = runs

    report: dict = {"episodes": episodes, "seed": args.seed, "priors": {}}
    for mode in priors:
        mode_blocks = {}
        for block in blocks:
            oracle = collected[(block, "oracle", None)]
            oracle_mean = float(np.mean([e.score for e in oracle]))
            alone = collected.get((block, "mpc", mode))
            rows = {}
            for strategy in strategies:
                runs = oracle if strategy == "oracle" else collected[(block, strategy, mode)]
                row = StrategySummary(runs).as_dict(oracle_mean)
                ratios = [
                    e.score / o.score for e, o in zip(runs, oracle, strict=True) if o.score > 0
                ]
                row["pct_of_oracle_per_episode"] = 100.0 * float(np.mean(ratios))
                if alone is not None:
                    row.update(paired_vs(runs, alone))
                rows[strategy] = row
            mode_blocks[block] = {"prior": mode, "strategies": rows}
        report["priors"][mode] = {
            "scenarios": mode_blocks,
            "summary": _summary(mode_blocks, strategies),
        }
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["mpc_explore"] = args.explore
    report["commission_delay_hours"] = args.commission_delay

    print(
        f"{episodes} episodes per row (held-out: {episodes} unseen randomised markets); the "
        "oracle is clairvoyant under every prior"
    )
    for mode in priors:
        data = report["priors"][mode]
        _print_table(mode, data["scenarios"], data["summary"], strategies)
        if "mpc" in strategies and "ppo-mpc" in strategies:
            print("ppo-mpc in % of MPC alone on the same days (+- paired standard error)")
            for block, block_data in data["scenarios"].items():
                row = block_data["strategies"]["ppo-mpc"]
                print(f"  {block:<20}{row['pct_of_mpc']:>9.2f}% +- {row['pct_of_mpc_se']:.2f}")
    print(f"wall time {report['wall_s']:.0f} s")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
