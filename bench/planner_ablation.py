"""Which part of the PPO planner's plan carries its lead over MPC alone: an ablation.

The planner's action has three entries (``policies.planner_env.ACTION_NAMES``): the ROI
risk level, the trend tilt between arms and the forecasts' trend gain. Every preset (and,
without ``--no-held-out``, as many unseen randomised markets) is played for
``--episodes`` seeded days by

- ``mpc``: MPC alone (the neutral plan, a fixed 3% ROI margin);
- ``zero``: the planner's zero action (the risk-calibrated ROI margin at its neutral
  z-score, no tilt, no trend): what the plan's machinery gives without a policy;
- ``ppo``: the policy, every entry as it chooses;
- ``ppo-no-<entry>``: the policy with that one entry held at 0, the rest as it chooses.

All of them play the same days with the same prior (common random numbers). The lead a
field carries is ``ppo`` less ``ppo-no-<field>``, in points of MPC alone's score. Prints
a table and writes JSON.

Usage::

    python bench/planner_ablation.py --episodes 20 --prior fitted --json out.json
        [--policy P.safetensors] [--presets a,b] [--no-held-out]
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

# Runnable as a plain script from a checkout: put the repository root on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.io import atomic_write_text  # noqa: E402
from envs.presets import PRESETS, get_scenario  # noqa: E402
from policies.evaluate import run_episode  # noqa: E402
from policies.planner_env import ACTION_NAMES, N_ACTIONS, PlannedMPCStrategy  # noqa: E402
from policies.ppo import PPOStrategy  # noqa: E402
from policies.prior import check_prior, prior_market  # noqa: E402
from policies.strategy import make_strategy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import HELD_OUT, day_parts, held_out_days  # noqa: E402


class ZeroAction(PlannedMPCStrategy):
    """The planner's zero action every hour: its plan machinery without a policy."""

    name = "zero"

    def choose_action(self, features: np.ndarray) -> np.ndarray:
        return np.zeros(N_ACTIONS)


class Ablated(PPOStrategy):
    """The policy with the action entries in ``held`` held at 0."""

    def __init__(self, held: tuple[int, ...], path: str | None = None):
        super().__init__(path=path)
        self.held = held

    def choose_action(self, features: np.ndarray) -> np.ndarray:
        action = super().choose_action(features).copy()
        action[list(self.held)] = 0.0
        return action


def variants() -> list[str]:
    return ["mpc", "zero", "ppo", *(f"ppo-no-{name}" for name in ACTION_NAMES)]


def _players(policy: str | None) -> dict:
    players = {"mpc": make_strategy("mpc"), "zero": ZeroAction(), "ppo": Ablated((), policy)}
    for i, name in enumerate(ACTION_NAMES):
        players[f"ppo-no-{name}"] = Ablated((i,), policy)
    return players


def _play(task: tuple) -> dict[str, list[float]]:
    days, prior, policy = task
    players = _players(policy)
    scores: dict[str, list[float]] = {name: [] for name in players}
    misses: dict[str, list[float]] = {name: [] for name in players}
    for scenario, seed in days:
        knowledge = prior_market(scenario, prior, seed)
        for name, strategy in players.items():
            result = run_episode(strategy, scenario, seed, prior, prior_market=knowledge)
            scores[name].append(result.score)
            misses[name].append(float(result.roi_missed))
    return {"scores": scores, "misses": misses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--prior", default="fitted")
    parser.add_argument("--policy", default=None, help="policy .safetensors (default: shipped)")
    parser.add_argument("--presets", default=None, help="comma-separated (default: all)")
    parser.add_argument("--no-held-out", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first preset day")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    prior = check_prior(args.prior)
    names = list(PRESETS) if args.presets is None else [p.strip() for p in args.presets.split(",")]
    blocks = {n: [(get_scenario(n), args.seed + e) for e in range(args.episodes)] for n in names}
    if not args.no_held_out and args.presets is None:
        blocks[HELD_OUT] = held_out_days(args.episodes)

    started = time.perf_counter()
    tasks, keys = [], []
    for block, _, days in day_parts(blocks):
        tasks.append((days, prior, args.policy))
        keys.append(block)
    collected: dict[str, dict[str, dict[str, list[float]]]] = {}
    with ProcessPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        for block, result in zip(keys, pool.map(_play, tasks), strict=True):
            slot = collected.setdefault(block, {"scores": {}, "misses": {}})
            for kind in ("scores", "misses"):
                for name, values in result[kind].items():
                    slot[kind].setdefault(name, []).extend(values)

    names_out = variants()
    rows = []
    header = f"{'block':<22}" + "".join(f"{n:>22}" for n in names_out[1:])
    print(f"prior {prior}, {args.episodes} days per block; % of MPC alone (ROI missed, % of days)")
    print(header)
    for block, data in collected.items():
        alone = np.asarray(data["scores"]["mpc"])
        row = {"block": block, "pct_of_mpc": {}, "roi_missed": {}}
        cells = []
        for name in names_out:
            pct = 100.0 * float(np.sum(data["scores"][name]) / np.sum(alone))
            missed = 100.0 * float(np.mean(data["misses"][name]))
            row["pct_of_mpc"][name] = pct
            row["roi_missed"][name] = missed
            if name != "mpc":
                cells.append(f"{pct:>14.2f} ({missed:>3.0f}%)")
        rows.append(row)
        print(f"{block:<22}" + "".join(f"{c:>22}" for c in cells))
    mean = {n: float(np.mean([r["pct_of_mpc"][n] for r in rows])) for n in names_out}
    print(f"{'mean':<22}" + "".join(f"{mean[n]:>22.2f}" for n in names_out[1:]))
    lead = {name: mean["ppo"] - mean[f"ppo-no-{name}"] for name in ACTION_NAMES}
    print("lead each plan field carries (ppo less ppo without it, points of MPC alone):")
    for name, value in lead.items():
        print(f"  {name:<12}{value:+.2f}")
    wall = time.perf_counter() - started
    print(f"wall time {wall:.0f} s")
    if args.json is not None:
        payload = {
            "prior": prior,
            "episodes": args.episodes,
            "seed": args.seed,
            "policy": args.policy,
            "rows": rows,
            "mean_pct_of_mpc": mean,
            "lead_by_field": lead,
            "wall_s": round(wall, 1),
        }
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
