"""Latency and accuracy of the MPC bidder's hourly decision.

For 20 and 100 arms over a 24-hour campaign, plays a full simulated day with the MPC
strategy and times every hourly decision (forecast update excluded, bid conversion
included). In the same run, a straightforward formulation is rebuilt from scratch every
hour (a new cvxpy problem over every hour separately, broad bid grid, Clarabel) on the
same states. Accuracy: the compiled plan's predicted GMV over the exact optimum's
(``bidder.exact.exact_plan``, same budget and ROI target, every hour separate, a fine
grid), at every decision.

    python bench/mpc_latency.py --json bench/results/mpc_latency.json
    python bench/mpc_latency.py --arms 1000 --episodes 1 --timing-only

The bidder's LP form and solvers are its defaults (the fill form on HiGHS) unless
``--formulation`` and ``--solvers`` name others. A reference configuration is measured in
the same run, on the same campaigns and seeds: by default the previous default, the
spend form (bounds as rows) with ECOS or Clarabel chosen by the LP's size
(``--reference-formulation``, ``--reference-solvers``; ``--reference-formulation ''``
skips it). ``--reference-formulation fill --reference-solvers HIGHS
--reference-uncompiled`` measures the same LP solved through ``problem.solve`` every hour
against the compiled path (``bidder.lp_solver.CompiledLP``).

One strategy plays every episode of a size, as ``evaluate`` and training use one: the
first episode compiles its bidder (``first_decision_new_bidder_ms``), the later ones
reuse it (``first_decision_ms``: a campaign's first decision, which solves twice to centre
the bid grid).

Rows: ``{"arms", "horizon", "solvers", "median_ms", "p95_ms", "rebuilt_median_ms",
"reference_median_ms", "speedup_vs_reference", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cvxpy as cp
import numpy as np

from bidder.exact import exact_plan
from bidder.mpc import CampaignState, MPCBidder, MPCConfig
from bidder.response import build_curves
from envs import AdMarketEnv
from envs.io import atomic_write_text
from envs.presets import CHANNELS, make_arm
from envs.scenario import Product, Scenario
from policies.mpc_strategy import MPCStrategy


def campaign(n_arms: int) -> Scenario:
    """``n_arms / 5`` products in all five channels, budget and ROI target both binding."""
    products = tuple(Product(f"product-{i}", aov=80.0 + 15.0 * i) for i in range(n_arms // 5))
    arms = tuple(make_arm(p.name, c) for p in products for c in CHANNELS)
    return Scenario(
        name=f"bench-{n_arms}",
        budget=4_000.0 * n_arms,
        roi_target=4.0,
        products=products,
        channels=tuple(CHANNELS.values()),
        arms=arms,
    )


def rebuilt_decision(forecast, state: CampaignState, n_pieces: int = 8) -> float:
    """The straightforward way: a fresh problem over every remaining hour, every hour."""
    started = time.perf_counter()
    curves = build_curves(
        forecast, state.bid_cap, n_pieces, forecast.horizon, state.exposure, blocks=False
    )
    spend = cp.Variable(curves.widths.size, nonneg=True)
    slack = cp.Variable(nonneg=True)
    slopes = curves.slopes.ravel()
    target = state.roi_target
    problem = cp.Problem(
        cp.Maximize(slopes @ spend - 50.0 * slack),
        [
            spend <= curves.widths.ravel(),
            cp.sum(spend) <= state.remaining_budget,
            (slopes - target) @ spend + slack >= target * state.spent - state.gmv,
        ],
    )
    problem.solve(solver="CLARABEL")
    return (time.perf_counter() - started) * 1e3


class TimedMPC(MPCStrategy):
    """The MPC strategy, recording each decision's wall time, the rebuilt formulation's
    time and the accuracy against the exact optimum on the same state."""

    #: Also time the rebuilt formulation and compare with the exact optimum (slow at
    #: hundreds of arms; ``--timing-only`` turns both off).
    extras = True

    def reset(self, env: AdMarketEnv) -> None:
        super().reset(env)
        self.timings, self.rebuilt, self.accuracy = [], [], []

    def act(self, observation: np.ndarray) -> np.ndarray:
        forecast, state = self.forecast(), self.state()
        started = time.perf_counter()
        decision = self.bidder.decide(forecast, state, self.plan(observation))
        self.timings.append((time.perf_counter() - started) * 1e3)
        self.decisions.append(decision)
        self.previous_bids = decision.bids_cpm
        if not self.extras:
            return decision.bids_cpm
        self.rebuilt.append(rebuilt_decision(forecast, state))
        target = state.roi_target * (1.0 + self.config.roi_safety)
        exact = exact_plan(
            forecast,
            state.bid_cap,
            state.remaining_budget,
            target,
            state.spent,
            state.gmv,
            state.exposure,
            n_pieces=96,
        )
        if exact.gmv > 0:
            self.accuracy.append(decision.plan_gmv / exact.gmv)
        return decision.bids_cpm


def _stat(values: list[float], reduce) -> float:
    """``reduce(values)``, or NaN when nothing was measured (``--timing-only``)."""
    return float(reduce(values)) if values else float("nan")


def measure(n_arms: int, episodes: int, config: MPCConfig, extras: bool = True) -> dict:
    scenario = campaign(n_arms)
    timings, rebuilt, accuracy, first, first_new, plan_gmv = [], [], [], [], [], []
    episode_gmv = []
    # One strategy for every episode, as evaluate and training use one: it compiles its
    # bidder in the first episode and reuses it in the next ones.
    strategy = TimedMPC(config)
    strategy.extras = extras
    for seed in range(episodes):
        env = AdMarketEnv(scenario)
        observation, _ = env.reset(seed=seed)
        strategy.reset(env)
        done = False
        while not done:
            action, _ = strategy.predict(observation)
            observation, _, done, _, info = env.step(action)
            strategy.observe(info)
        # A campaign's first decision solves twice to centre the grid; a new bidder's
        # (the first episode's) also compiles the problem.
        (first if seed else first_new).append(strategy.timings[0])
        timings += strategy.timings[1:]
        rebuilt += strategy.rebuilt[1:]
        accuracy += strategy.accuracy
        plan_gmv += [d.plan_gmv for d in strategy.decisions]
        episode_gmv.append(info["gmv_total"])
        assert info["spend_total"] <= scenario.budget
    return {
        "arms": n_arms,
        "horizon": scenario.horizon_hours,
        "median_ms": float(np.median(timings)),
        "p95_ms": float(np.percentile(timings, 95)),
        "rebuilt_median_ms": _stat(rebuilt, np.median),
        "speedup_vs_rebuilt": _stat(rebuilt, np.median) / float(np.median(timings)),
        "first_decision_ms": float(np.median(first or first_new)),
        "first_decision_new_bidder_ms": float(np.median(first_new)),
        "gmv_vs_exact_median": _stat(accuracy, np.median),
        "gmv_vs_exact_p5": _stat(accuracy, lambda v: np.percentile(v, 5)),
        "decisions": len(timings),
        # Every decision's planned GMV summed: the same states for every configuration as
        # long as their bids agree (the plans are compared by this sum's ratio).
        "plan_gmv_total": float(np.sum(plan_gmv)),
        "episode_gmv_total": float(np.sum(episode_gmv)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--arms", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--episodes", type=int, default=3, help="simulated days per size")
    parser.add_argument(
        "--pieces", type=int, default=MPCConfig.n_pieces, help="pieces per arm and period"
    )
    parser.add_argument(
        "--solvers",
        default="auto",
        help="cvxpy solvers in order, or auto: chosen by the form and the LP's size (the default)",
    )
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="skip the rebuilt formulation and the exact optimum (for hundreds of arms)",
    )
    parser.add_argument("--formulation", default=MPCConfig.formulation, help="fill or spend")
    parser.add_argument(
        "--reference-formulation",
        default="spend",
        help="the LP form measured in the same run for comparison (the default: spend, the "
        "form used before the fill form; '' to skip)",
    )
    parser.add_argument(
        "--reference-solvers", default="auto", help="the reference's solver order, or auto"
    )
    parser.add_argument(
        "--uncompiled",
        action="store_true",
        help="solve through problem.solve every hour (MPCConfig(compiled=False))",
    )
    parser.add_argument(
        "--reference-uncompiled",
        action="store_true",
        help="the reference solves through problem.solve (with --reference-formulation fill "
        "and --reference-solvers HIGHS: the cost of cvxpy's per-solve steps)",
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    def solver_order(text: str) -> tuple[str, ...] | None:
        return None if text == "auto" else tuple(text.split(","))

    config = MPCConfig(
        n_pieces=args.pieces,
        solvers=solver_order(args.solvers),
        formulation=args.formulation,
        compiled=not args.uncompiled,
    )
    rows = []
    for n in args.arms:
        row = measure(n, args.episodes, config, not args.timing_only)
        row["formulation"] = config.formulation
        row["compiled"] = config.compiled
        row["solvers"] = ",".join(MPCBidder(n, 24, config).solvers)
        if args.reference_formulation:
            reference = MPCConfig(
                n_pieces=args.pieces,
                solvers=solver_order(args.reference_solvers),
                formulation=args.reference_formulation,
                compiled=not args.reference_uncompiled,
            )
            ref = measure(n, args.episodes, reference, not args.timing_only)
            row["reference_formulation"] = reference.formulation
            row["reference_compiled"] = reference.compiled
            row["reference_solvers"] = ",".join(MPCBidder(n, 24, reference).solvers)
            row["reference_median_ms"] = ref["median_ms"]
            row["reference_first_decision_ms"] = ref["first_decision_ms"]
            row["reference_first_decision_new_bidder_ms"] = ref["first_decision_new_bidder_ms"]
            row["reference_gmv_vs_exact_median"] = ref["gmv_vs_exact_median"]
            row["speedup_vs_reference"] = ref["median_ms"] / row["median_ms"]
            row["plan_gmv_vs_reference"] = row["plan_gmv_total"] / ref["plan_gmv_total"]
            row["episode_gmv_vs_reference"] = row["episode_gmv_total"] / ref["episode_gmv_total"]
        rows.append(row)
    print(
        f"{'arms':>5} {'hours':>5} {'solvers':>15} {'median ms':>10} {'p95 ms':>8} "
        f"{'rebuilt ms':>11} {'speed-up':>9} {'first ms':>9} {'new-bidder':>11} {'GMV/exact':>10} "
        f"{'p5':>7}"
        + (
            f" {'reference ms':>13} {'ref first':>10} {'vs ref':>7} {'GMV/ref':>10}"
            if args.reference_formulation
            else ""
        )
    )
    for r in rows:
        print(
            f"{r['arms']:>5} {r['horizon']:>5} {r['solvers']:>15} {r['median_ms']:>10.2f} "
            f"{r['p95_ms']:>8.2f} {r['rebuilt_median_ms']:>11.1f} "
            f"{r['speedup_vs_rebuilt']:>8.1f}x {r['first_decision_ms']:>9.0f} "
            f"{r['first_decision_new_bidder_ms']:>11.0f} "
            f"{r['gmv_vs_exact_median']:>10.4f} {r['gmv_vs_exact_p5']:>7.4f}"
            + (
                f" {r['reference_median_ms']:>13.2f} {r['reference_first_decision_ms']:>10.0f}"
                f" {r['speedup_vs_reference']:>6.2f}x {r['plan_gmv_vs_reference']:>10.6f}"
                if args.reference_formulation
                else ""
            )
        )
    if args.json:
        payload = {
            "benchmark": "mpc_latency",
            "machine": platform.machine(),
            "python": platform.python_version(),
            "cvxpy": cp.__version__,
            "rows": rows,
        }
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
