"""Environment speed: ``AdMarketEnv`` and ``AdMarketVectorEnv`` steps per second.

Measures the environment class itself on one core (no vector wrapper, no policy): for each
arm count it builds a scenario of ``ceil(arms / 5)`` products on all five channels, gives
it a budget no bid can exhaust so that episodes end on the horizon rather than on spend,
and steps it with uniformly random normalised bids. Episode resets (which draw a new
market) happen inside the timed loop, so their cost is counted. Random actions are drawn
in advance, in one block, so the figure is the environment's and not the action
sampler's. The figure reported is the median over several repeats.

The vectorised environment (:class:`envs.vector_env.AdMarketVectorEnv`, ``--n-envs``
campaigns, 64 by default) is measured the same way, in campaign-steps per second, and
beside it Gymnasium's ``SyncVectorEnv`` over as many single environments (the only way to
vectorise before it), in the same run. The process is pinned to one core.

Usage::

    python bench/env_speed.py --json bench/results/env_speed.json

A second table steps the presets themselves the same way, with their own budgets, in the
same run: ``default`` (the classic market) against every market-mechanism preset, and
``real-world`` (all mechanisms on 15 arms) in particular, with each one's speed as a share
of ``default``'s.

The JSON file holds ``{"rows": [{"arms": N, "n_envs": E, "steps_per_s": X}, ...]`` (``n_envs``
1 for the single environment; for the vector rows also ``sync_steps_per_s``), ``"presets":
[{"preset": NAME, "arms": K, "steps_per_s": X, "vs_default": R}, ...], "machine": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Runnable as a plain script from a checkout: put the repository root on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gymnasium.vector import SyncVectorEnv  # noqa: E402

from envs.market_env import AdMarketEnv  # noqa: E402
from envs.presets import CHANNELS, MECHANISM_PRESETS, get_scenario, make_arm  # noqa: E402
from envs.scenario import Product, Scenario  # noqa: E402
from envs.vector_env import AdMarketVectorEnv  # noqa: E402

ARM_COUNTS: tuple[int, ...] = (10, 25, 100)
#: Large enough that no hour of random bids can spend it: episodes run the full horizon.
UNREACHABLE_BUDGET = 1e13  # the largest budget a scenario may state


def bench_scenario(n_arms: int) -> Scenario:
    """A one-day scenario with exactly ``n_arms`` arms over all five channels."""
    channels = list(CHANNELS)
    n_products = math.ceil(n_arms / len(channels))
    products = tuple(Product(f"product-{i}", aov=120.0 + 10.0 * i) for i in range(n_products))
    arms = tuple(make_arm(p.name, c) for p in products for c in channels)[:n_arms]
    return Scenario(
        name=f"bench-{n_arms}",
        budget=UNREACHABLE_BUDGET,
        roi_target=3.0,
        products=products,
        channels=tuple(CHANNELS.values()),
        arms=arms,
        description="environment speed benchmark",
    )


def steps_per_second(n_arms: int, steps: int, seed: int, scenario: Scenario | None = None) -> float:
    """Time ``steps`` environment steps (resets included) with random bids."""
    env = AdMarketEnv(scenario or bench_scenario(n_arms))
    n_arms = env.n_arms
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, (steps, n_arms)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    return steps / elapsed


def vector_steps_per_second(
    n_arms: int, n_envs: int, steps: int, seed: int, native: bool = True
) -> float:
    """Campaign-steps per second of ``n_envs`` campaigns stepped together (autoreset
    included): the native vector env, or ``SyncVectorEnv`` over single environments."""
    scenario = bench_scenario(n_arms)
    if native:
        env = AdMarketVectorEnv(n_envs, scenario)
    else:
        env = SyncVectorEnv([lambda: AdMarketEnv(scenario) for _ in range(n_envs)])
    rounds = max(steps // n_envs, 1)
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, (rounds, n_envs, n_arms))
    actions = actions.astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    elapsed = time.perf_counter() - start
    env.close()
    return rounds * n_envs / elapsed


def machine_info() -> dict[str, object]:
    """Enough about the machine to read the figures against."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    parser.add_argument("--steps", type=int, default=20_000, help="steps per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per arm count")
    parser.add_argument(
        "--arms", type=int, nargs="+", default=list(ARM_COUNTS), help="arm counts to measure"
    )
    parser.add_argument(
        "--n-envs", type=int, default=64, help="campaigns of the vector rows (0: none)"
    )
    parser.add_argument(
        "--presets",
        nargs="*",
        default=["default", *MECHANISM_PRESETS],
        help="presets to step (default: default and every mechanism preset; none to skip)",
    )
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    # A short warm-up so the first arm count does not pay for imports and caches.
    steps_per_second(args.arms[0], 2_000, seed=0)
    rows = []
    print(f"{'arms':>5} {'envs':>5} {'steps/s (median)':>17} {'min':>9} {'max':>9} {'sync':>9}")
    for n_arms in args.arms:
        runs = [steps_per_second(n_arms, args.steps, seed) for seed in range(args.repeats)]
        median = statistics.median(runs)
        rows.append({"arms": n_arms, "n_envs": 1, "steps_per_s": round(median, 1)})
        print(f"{n_arms:>5} {1:>5} {median:>17,.0f} {min(runs):>9,.0f} {max(runs):>9,.0f}")
        if args.n_envs:
            runs, sync = [], []
            for seed in range(args.repeats):
                runs.append(vector_steps_per_second(n_arms, args.n_envs, args.steps, seed))
                sync.append(
                    vector_steps_per_second(n_arms, args.n_envs, args.steps, seed, native=False)
                )
            median, sync_median = statistics.median(runs), statistics.median(sync)
            rows.append(
                {
                    "arms": n_arms,
                    "n_envs": args.n_envs,
                    "steps_per_s": round(median, 1),
                    "sync_steps_per_s": round(sync_median, 1),
                }
            )
            print(
                f"{n_arms:>5} {args.n_envs:>5} {median:>17,.0f} {min(runs):>9,.0f} "
                f"{max(runs):>9,.0f} {sync_median:>9,.0f}"
            )
    presets = []
    if args.presets:
        print(f"\n{'preset':<20} {'arms':>5} {'steps/s (median)':>17} {'vs default':>11}")
    base = None
    for name in args.presets:
        scenario = get_scenario(name)
        runs = [
            steps_per_second(scenario.n_arms, args.steps, seed, scenario)
            for seed in range(args.repeats)
        ]
        median = statistics.median(runs)
        if name == "default":
            base = median
        ratio = median / base if base else None
        presets.append(
            {
                "preset": name,
                "arms": scenario.n_arms,
                "steps_per_s": round(median, 1),
                "vs_default": None if ratio is None else round(ratio, 3),
            }
        )
        shown = "" if ratio is None else f"{ratio:>10.2f}x"
        print(f"{name:<20} {scenario.n_arms:>5} {median:>17,.0f} {shown:>11}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "rows": rows,
            "presets": presets,
            "steps_per_repeat": args.steps,
            "repeats": args.repeats,
            "machine": machine_info(),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
