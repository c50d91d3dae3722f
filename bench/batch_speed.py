"""``autopilot recommend --batch`` throughput: campaigns (25 arms by default) per hour per core.

Simulates a few distinct 28-day histories of a 25-arm campaign, writes a batch file of
``--campaigns`` campaigns over them (budgets and ROI targets varied), and times
:func:`policies.batch.run_batch` into a fresh output folder with 1 and 2 local workers
(the pool's start-up and the batch report included), and with the Ray backend on a local
Ray the bench starts once with as many CPUs as the most workers. The figure is the median
over ``--repeats`` runs; speed-ups are against the first row (local, 1 worker).

Usage::

    python bench/batch_speed.py --json bench/results/batch_speed.json

The JSON holds ``{"rows": [{"backend": "local" or "ray", "workers": W, "campaigns": N, "arms": 25,
"median_s": X, "campaigns_per_hour_per_core": Y, "speed_up": S}, ...], "machine": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.recommend_speed import bench_scenario  # noqa: E402
from bidder.logs import write_logs  # noqa: E402
from policies.batch import read_batch, run_batch  # noqa: E402
from policies.simulate import simulate_logs  # noqa: E402

ARMS = 25
DAYS = 28
HISTORIES = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaigns", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument(
        "--backends", default="local,ray", help="comma-separated: local, ray (needs the extra)"
    )
    parser.add_argument("--arms", type=int, default=ARMS, help="arms per campaign")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    scenario = bench_scenario(args.arms)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(HISTORIES):
            write_logs(simulate_logs(scenario, "pid", DAYS, seed=i), folder / f"h{i}.csv")
        lines = []
        for c in range(args.campaigns):
            budget = scenario.budget * (0.6 + 0.1 * (c % 7))
            lines += [
                "[[campaign]]",
                f'id = "c{c:05d}"',
                f'history = "h{c % HISTORIES}.csv"',
                f"budget = {budget:.0f}",
                f"roi_target = {2.5 + 0.25 * (c % 4)}",
                'date = "2026-02-02"',
            ]
        (folder / "batch.toml").write_text("\n".join(lines) + "\n")
        campaigns = read_batch(folder / "batch.toml")
        rows = []
        for backend in args.backends.split(","):
            if backend == "ray":
                import ray

                # One local Ray for every Ray run: its start-up (about 4 s) is not a
                # campaign's cost. Its worker processes start in the first run, as a
                # pool's do in every local run.
                ray.init(num_cpus=max(int(w) for w in args.workers.split(",")),
                         include_dashboard=False, log_to_driver=False, logging_level="ERROR")  # fmt: skip
            for workers in [int(w) for w in args.workers.split(",")]:
                runs = []
                for repeat in range(args.repeats):
                    out = folder / f"out-{backend}-{workers}-{repeat}"
                    start = time.perf_counter()
                    report = run_batch(campaigns, out, workers=workers, backend=backend)
                    runs.append(time.perf_counter() - start)
                    assert all(row["status"] == "ok" for row in report), report
                median = statistics.median(runs)
                rows.append(
                    {
                        "backend": backend,
                        "workers": workers,
                        "campaigns": len(campaigns),
                        "arms": args.arms,
                        "history_days": DAYS,
                        "median_s": round(median, 3),
                        "runs_s": [round(r, 3) for r in runs],
                        "campaigns_per_hour_per_core": round(
                            len(campaigns) / median * 3600 / workers
                        ),
                    }
                )
            if backend == "ray":
                ray.shutdown()
        base = rows[0]["median_s"]
        for row in rows:
            row["speed_up"] = round(base / row["median_s"], 2)
        load = os.getloadavg()
    print(
        f"{'backend':<8} {'workers':>7} {'campaigns':>9} {'median s':>9} {'per h per core':>15} {'speed-up':>8}"
    )
    for row in rows:
        print(
            f"{row['backend']:<8} {row['workers']:>7} {row['campaigns']:>9} {row['median_s']:>9.2f} "
            f"{row['campaigns_per_hour_per_core']:>15,} {row['speed_up']:>8.2f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        machine = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_after": [round(x, 2) for x in load],
        }
        args.json.write_text(json.dumps({"rows": rows, "machine": machine}, indent=2) + "\n")


if __name__ == "__main__":
    main()
