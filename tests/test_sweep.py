"""``autopilot evaluate --sweep``: scenarios x scales x priors x strategies x seeds, resumable."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from envs.presets import get_scenario
from policies.cli import main
from policies.evaluate import evaluate_many
from policies.sweep import RESULT_COLUMNS, SUMMARY_COLUMNS, journal_path, read_sweep, run_sweep

SWEEP = """
strategies = ["mpc", "proportional"]
seeds = 2
first_seed = 3
priors = ["fitted", "cold"]
scenarios = ["default"]
budget_scale = [0.5, 1.0]

[sample]
count = 1
seed = 11
[sample.ranges]
n_channels = [2, 3]
"""


def write(folder: Path, text: str = SWEEP) -> Path:
    path = folder / "sweep.toml"
    path.write_text(text)
    return path


def timeless(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="seconds").reset_index(drop=True)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    sweep = read_sweep(write(folder))
    results, summary, reused = run_sweep(sweep, folder / "results.parquet", workers=1)
    return folder, sweep, results, summary, reused


def test_a_sweep_has_one_row_per_episode_with_the_documented_columns(swept):
    folder, sweep, results, summary, reused = swept
    # 2 sources (a preset, a sample) x 2 budget scales x 2 seeds = 8 units, each the
    # oracle plus 2 strategies x 2 priors.
    assert len(sweep.units) == 8 and reused == 0
    written = pd.read_parquet(folder / "results.parquet")
    assert tuple(written.columns) == RESULT_COLUMNS
    assert len(written) == 8 * 5 == sweep.episodes
    assert written.groupby(["unit", "prior", "strategy"]).size().eq(1).all()
    assert set(written["strategy"]) == {"oracle", "mpc", "proportional"}
    assert set(written.loc[written["strategy"] == "oracle", "prior"]) == {"clairvoyant"}
    assert set(written["seed"]) == {3, 4}
    assert not written["budget_violated"].any()
    assert (written["spend"] <= written["budget"] * (1 + 1e-9)).all()
    ratio = 100 * written["score"] / written["oracle_score"]
    pd.testing.assert_series_equal(written["pct_of_oracle"], ratio, check_names=False)
    default = written[written["scenario"] == "default"]
    budget = get_scenario("default").budget
    assert sorted(set(default["budget"])) == [pytest.approx(budget * 0.5), pytest.approx(budget)]
    table = pd.read_csv(folder / "results.summary.csv")
    assert tuple(table.columns) == SUMMARY_COLUMNS
    assert len(table) == 4 * 5 and (table["episodes"] == 2).all()
    assert not journal_path(folder / "results.parquet").exists()


def test_a_sweep_row_is_the_episode_evaluate_plays(swept):
    _, _, results, _, _ = swept
    report = evaluate_many(["mpc"], ["default"], 1, seed=3, prior="cold")
    row = results[
        (results["scenario"] == "default")
        & (results["budget_scale"] == 1.0)
        & (results["seed"] == 3)
        & (results["prior"] == "cold")
        & (results["strategy"] == "mpc")
    ]
    figures = report["scenarios"]["default"]["strategies"]["mpc"]
    assert row["score"].item() == pytest.approx(figures["score_mean"], rel=1e-12)
    assert row["pct_of_oracle"].item() == pytest.approx(figures["pct_of_oracle"], rel=1e-12)


def test_two_workers_give_the_same_results_as_one(swept, tmp_path):
    folder, sweep, results, summary, _ = swept
    two, two_summary, _ = run_sweep(sweep, tmp_path / "two.parquet", workers=2)
    pd.testing.assert_frame_equal(timeless(two), timeless(results))
    pd.testing.assert_frame_equal(two_summary, summary)


def test_a_killed_sweep_resumes_with_every_unit_done_once(swept, tmp_path):
    folder, _, results, _, _ = swept
    sweep_file = write(tmp_path)
    out = tmp_path / "results.csv"
    argv = [str(Path(sys.executable).with_name("autopilot")), "evaluate", "--sweep",
            str(sweep_file), "--out", str(out), "--workers", "1", "--no-progress"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = journal_path(out)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(journal.glob("*.json"))) < 2:
        time.sleep(0.05)
    process.kill()
    process.wait()
    parts = {p.stem: json.loads(p.read_text()) for p in journal.glob("*.json")}
    assert 0 < len(parts) < 8 and not out.exists(), "kill the sweep midway"
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{len(parts)} kept from an earlier run" in done.stdout
    resumed = pd.read_csv(out)
    assert len(resumed) == 40 and not journal.exists()
    # Journaled units were kept as they were (their timings too), not played again.
    for key, rows in parts.items():
        kept = resumed[resumed["unit"] == key]
        assert list(kept["seconds"]) == [row["seconds"] for row in rows]
    # And the whole equals an uninterrupted sweep.
    pd.testing.assert_frame_equal(
        timeless(resumed), timeless(results), check_dtype=False, check_exact=False, rtol=1e-12
    )
    # A rerun of a finished sweep plays nothing.
    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode == 0 and "8 kept from an earlier run" in again.stdout


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("strategies = [\n", "not a TOML"),
        ('strategies = ["mpc"]\nscenarios = ["default"]\nepisodes = 3\n', "unknown key 'episodes'"),
        ('strategies = ["mcp"]\nscenarios = ["default"]\n', "unknown strategy 'mcp'"),
        ('strategies = ["mpc"]\nscenarios = ["default"]\npriors = ["warm"]\n', "priors must be"),
        ('strategies = ["mpc"]\nscenarios = ["default"]\nbudget_scale = [-1]\n', "above 0"),
        ('strategies = ["mpc"]\nscenarios = ["default"]\nseeds = 0\n', "seeds must be"),
        ('strategies = ["mpc"]\n', "no scenarios"),
        ('strategies = ["mpc"]\nscenarios = ["default", "default"]\n', "listed twice"),
        ('strategies = ["mpc"]\nscenarios = ["missing.toml"]\n', "missing.toml"),
        ('strategies = ["ppo-mpc"]\nscenarios = ["default"]\n', "needs policy"),
        ('strategies = ["mpc"]\n[sample]\ncount = 2\nseed = 1\n[sample.ranges]\nwidth = [1, 2]\n', "unknown field 'width'"),
        ('strategies = ["mpc"]\n[sample]\ncount = 2\nseed = 1\n[sample.ranges]\nn_channels = [3, 2]\n', "low <= high"),
    ],
)  # fmt: skip
def test_a_bad_sweep_file_is_refused_in_one_line(text, fragment, tmp_path, capsys):
    sweep = write(tmp_path, text)
    code = main(["evaluate", "--sweep", str(sweep), "--out", str(tmp_path / "r.parquet")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and fragment in err, err
    assert list(tmp_path.iterdir()) == [sweep]


def test_sweep_and_single_evaluation_flags_do_not_mix(tmp_path, capsys):
    sweep = write(tmp_path)
    out = str(tmp_path / "r.parquet")
    assert main(["evaluate", "--sweep", str(sweep), "--out", out, "--episodes", "3"]) == 2
    assert "--episodes is for one evaluation" in capsys.readouterr().err
    assert main(["evaluate", "--sweep", str(sweep)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["evaluate", "--sweep", str(sweep), "--out", str(tmp_path / "r.xlsx")]) == 2
    assert "r.xlsx" in capsys.readouterr().err
    assert main(["evaluate", "--sweep", str(sweep), "--out", str(sweep.with_suffix(".csv")),
                 "--summary", str(sweep)]) == 2  # fmt: skip
    capsys.readouterr()
    (tmp_path / "r.parquet.parts").write_text("not a folder")
    assert main(["evaluate", "--sweep", str(sweep), "--out", out]) == 2
    assert "r.parquet.parts" in capsys.readouterr().err
    (tmp_path / "r.parquet.parts").unlink()
    assert main(["evaluate", "--workers", "2"]) == 2
    assert "--workers goes with --sweep" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [sweep]
