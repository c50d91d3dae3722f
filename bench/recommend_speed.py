"""``autopilot recommend`` speed, end to end: the real command in a fresh Python process.

For each campaign size it simulates ``days`` days of hourly logs (``pid`` strategy) for a
campaign of ``ceil(arms / 5)`` products on all five channels, writes them to a CSV, then
times the ``autopilot recommend ...`` console script as a subprocess: interpreter start,
imports, reading and validating the logs, fitting, the MPC plan and the atomic writes all
count. The figure reported is the median wall time over several repeats.

Usage::

    python bench/recommend_speed.py --json bench/results/recommend_speed.json

The JSON file holds ``{"rows": [{"arms": N, "days": D, "rows": R, "median_s": X,
"runs_s": [...]}, ...], "machine": {...}}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Runnable as a plain script from a checkout: put the repository root on the path.
sys.path.insert(0, str(ROOT))

from bidder.logs import write_logs  # noqa: E402
from envs.presets import CHANNELS, make_arm  # noqa: E402
from envs.scenario import Product, Scenario  # noqa: E402
from policies.simulate import simulate_logs  # noqa: E402

#: (arms, days of history) measured; the target is 25 arms x 28 days under 2 s.
CASES: tuple[tuple[int, int], ...] = ((15, 14), (25, 28), (50, 28))
REPEATS = 5


def bench_scenario(n_arms: int) -> Scenario:
    """A one-day campaign with exactly ``n_arms`` arms over all five channels."""
    channels = list(CHANNELS)
    n_products = math.ceil(n_arms / len(channels))
    products = tuple(Product(f"product-{i}", aov=120.0 + 25.0 * i) for i in range(n_products))
    arms = tuple(make_arm(p.name, c) for p in products for c in channels)[:n_arms]
    return Scenario(
        name=f"bench-{n_arms}",
        budget=8_000.0 * n_arms,
        roi_target=3.0,
        products=products,
        channels=tuple(CHANNELS.values()),
        arms=arms,
        description="recommend speed benchmark",
    )


def time_recommend(history: Path, out: Path, budget: float, date: dt.date) -> float:
    """Wall time of one ``autopilot recommend`` run in a fresh interpreter (seconds)."""
    script = Path(sys.executable).with_name("autopilot")
    # The installed console script is what a nightly job runs; a bare checkout falls back
    # to the same entry point through the interpreter.
    entry = (
        [str(script)]
        if script.is_file()
        else [sys.executable, "-c", "import sys; from policies.cli import main; sys.exit(main())"]
    )
    command = [
        *entry,
        "recommend",
        "--history",
        str(history),
        "--budget",
        str(budget),
        "--roi-target",
        "3",
        "--date",
        date.isoformat(),
        "--out",
        str(out),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n_arms, days in CASES:
            scenario = bench_scenario(n_arms)
            logs = simulate_logs(scenario, "pid", days, seed=0)
            history = Path(folder) / f"logs_{n_arms}_{days}.csv"
            write_logs(logs, history)
            date = logs["date"].max().date() + dt.timedelta(days=1)
            runs = [
                time_recommend(history, Path(folder) / "recs.csv", scenario.budget, date)
                for _ in range(args.repeats)
            ]
            rows.append(
                {
                    "arms": n_arms,
                    "days": days,
                    "rows": len(logs),
                    "median_s": statistics.median(runs),
                    "runs_s": runs,
                }
            )

    print(f"{'arms':>5} {'days':>5} {'log rows':>9} {'median s':>9} {'min s':>7}")
    for row in rows:
        print(
            f"{row['arms']:>5} {row['days']:>5} {row['rows']:>9,} {row['median_s']:>9.2f} "
            f"{min(row['runs_s']):>7.2f}"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        machine = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        }
        args.json.write_text(json.dumps({"rows": rows, "machine": machine}, indent=2) + "\n")


if __name__ == "__main__":
    main()
