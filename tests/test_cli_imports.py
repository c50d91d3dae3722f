"""The command line defers modules a dependency imports but a command never uses
(``policies.cli.lazy``): ``recommend`` runs without running them, and any later use of
them works as a plain import would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bidder.logs import write_logs
from policies.simulate import simulate_logs

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_recommend_runs_without_scipy_stats_or_optimize(tmp_path):
    history = tmp_path / "logs.csv"
    logs = simulate_logs("default", "pid", 3, seed=0)
    write_logs(logs, history)
    date = (logs["date"].max() + pd.Timedelta(days=1)).date().isoformat()
    out = tmp_path / "recs.csv"
    code = f"""
import json, sys
from policies.cli import main
from policies.cli.lazy import is_deferred
code = main(["recommend", "--history", {str(history)!r}, "--budget", "120000",
             "--roi-target", "3", "--date", {date!r}, "--out", {str(out)!r}])
print(json.dumps({{"code": code, "stats": is_deferred("scipy.stats"),
                  "optimize": is_deferred("scipy.optimize"),
                  "stats_code_ran": "scipy.stats._stats_py" in sys.modules}}))
"""
    result = json.loads(run_python(code))
    assert result == {"code": 0, "stats": True, "optimize": True, "stats_code_ran": False}
    assert out.stat().st_size > 0


def test_a_deferred_module_works_as_imported_on_first_use():
    code = """
import json, math, sys
from policies.cli.lazy import defer, defer_unused_imports, is_deferred
defer_unused_imports()
import cvxpy as cp
from cvxpy.atoms.quantum_rel_entr import entropy  # cvxpy's own by-name import
before = is_deferred("scipy.stats")
value = entropy([0.5, 0.5])  # the stand-in runs the module and calls its entropy
import scipy.stats
from scipy.stats import norm
import scipy.stats._stats_py  # submodules import as usual
x = cp.Variable()
cp.Problem(cp.Minimize(x), [x >= 1]).solve(solver="SCIPY")  # runs scipy.optimize
print(json.dumps({
    "before": before, "after": is_deferred("scipy.stats"),
    "entropy": value, "norm": float(norm.cdf(0.0)),
    "replaced": scipy.stats.entropy is not entropy,
    "optimize": is_deferred("scipy.optimize"), "x": float(x.value),
    "again": defer("scipy.stats"),
}))
"""
    result = json.loads(run_python(code))
    assert result["before"] is True and result["after"] is False
    assert abs(result["entropy"] - 0.6931471805599453) < 1e-12
    assert result["norm"] == 0.5 and result["replaced"]
    assert result["optimize"] is False and abs(result["x"] - 1.0) < 1e-6
    assert result["again"] is False  # already imported: left alone
