"""Which response model plans the better day? (``autopilot recommend --model``)

Per preset and seed: simulate 14 days of PID-paced logs, recommend day 15 with each
response model (``parametric``: the closed form on the fitted parameters; ``empirical``:
each channel's auction curves learned from the logs, ``bidder.empirical``), then play
each plan's hourly bids in the true market of day 15 for ``--draws`` days (the platform
stops at the budget) and score them as every evaluation does,
``GMV * min(1, ROI / target)^2``. Prints a table and writes JSON.

    python bench/models.py --seeds 0 1 2 --draws 30 --json bench/results/models.json

``--logs mpc --explore 0.1`` makes the history with MPC alone varying its bids by
``exp(+-0.1)`` (``MPCConfig.explore``), as an autopilot that explores would log it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

from bidder.recommend import RESPONSE_MODELS, recommend
from envs import AdMarketEnv, score
from envs.io import atomic_write_text
from envs.presets import MECHANISM_PRESETS
from policies.simulate import day_scenario, simulate_logs

HISTORY_DAYS = 14


def replay(scenario, bids: np.ndarray, draws: int, seed: int) -> tuple[float, float]:
    """Mean score and share of days below the ROI target of fixed hourly ``bids``."""
    scores, missed = [], []
    env = AdMarketEnv(scenario)
    for d in range(draws):
        env.reset(seed=seed + d)
        done, t = False, 0
        while not done:
            _, _, done, _, info = env.step(env.bids_to_action(bids[t]))
            t += 1
        spend, gmv = info["spend_total"], info["gmv_total"]
        scores.append(score(gmv, spend, scenario.roi_target))
        missed.append(spend > 0 and gmv / spend < scenario.roi_target * (1 - 1e-9))
    return float(np.mean(scores)), float(np.mean(missed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["default", *MECHANISM_PRESETS])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--logs", default="pid", help="strategy that makes the history")
    parser.add_argument(
        "--explore", type=float, default=0.0, help="with --logs mpc: MPCConfig.explore"
    )
    args = parser.parse_args()
    options = None
    if args.explore:
        from bidder.mpc import MPCConfig

        if args.logs != "mpc":
            parser.error("--explore needs --logs mpc")
        options = {"config": MPCConfig(explore=args.explore)}
    rows, started = [], time.perf_counter()
    print(
        f"{'preset':<22}"
        + "".join(f"{m:>14}{'missed':>8}" for m in RESPONSE_MODELS)
        + f"{'gain':>8}"
    )
    for preset in args.presets:
        per_model = {m: [] for m in RESPONSE_MODELS}
        for seed in args.seeds:
            logs = simulate_logs(preset, args.logs, HISTORY_DAYS, seed, strategy_options=options)
            date = logs["date"].max().date() + dt.timedelta(days=1)
            tomorrow = day_scenario(_scenario(preset), HISTORY_DAYS)
            order = [(arm.product, arm.channel) for arm in tomorrow.arms]
            for model in RESPONSE_MODELS:
                rec = recommend(logs, tomorrow.budget, tomorrow.roi_target, date, model=model)
                table = rec.table.assign(
                    lever=rec.table["commission_rate"].fillna(rec.table["bid"])
                    if "commission_rate" in rec.table.columns
                    else rec.table["bid"]
                ).pivot_table(index="hour", columns=["product", "channel"], values="lever")
                bids = np.array([[table.loc[h, arm] for arm in order] for h in range(24)])
                per_model[model].append(replay(tomorrow, bids, args.draws, 10_000 + 100 * seed))
        row = {"preset": preset}
        for model, results in per_model.items():
            row[model] = float(np.mean([r[0] for r in results]))
            row[f"{model}_roi_missed"] = float(np.mean([r[1] for r in results]))
        row["gain"] = row["empirical"] / row["parametric"] - 1.0
        rows.append(row)
        print(
            f"{preset:<22}"
            + "".join(
                f"{row[m]:>14,.0f}{100 * row[m + '_roi_missed']:>7.0f}%" for m in RESPONSE_MODELS
            )
            + f"{100 * row['gain']:>+7.1f}%",
            flush=True,
        )
    gains = [r["gain"] for r in rows]
    print(
        f"empirical vs parametric: mean {100 * np.mean(gains):+.2f}%, better on "
        f"{sum(g > 0 for g in gains)}/{len(gains)} ({time.perf_counter() - started:.0f} s)"
    )
    if args.json is not None:
        payload = {
            "seeds": args.seeds,
            "draws": args.draws,
            "logs": args.logs,
            "explore": args.explore,
            "rows": rows,
        }
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")


def _scenario(preset: str):
    from envs.presets import get_scenario

    return get_scenario(preset)


if __name__ == "__main__":
    main()
