"""``autopilot simulate``: documented columns, determinism, the multi-day rule, bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bidder.logs import LOG_COLUMNS, read_logs
from envs import get_scenario
from envs.scenario import Shock
from policies.cli import main
from policies.simulate import SimulationError, day_scenario, simulate_logs

# Written by every simulation; commission_rate only where a channel is paid so.
DOCUMENTED = [c for c in LOG_COLUMNS if c not in ("creative_id", "commission_rate")]


def test_cli_writes_documented_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "logs.csv"
    assert (
        main(["simulate", "--scenario", "steady", "--days", "3", "--seed", "4", "--out", str(out)])
        == 0
    )
    assert "wrote 432 rows" in capsys.readouterr().out
    header = out.read_text().splitlines()[0].split(",")
    assert header == DOCUMENTED
    logs = read_logs(out)
    assert len(logs) == 3 * 24 * 6
    assert logs.groupby("date").size().eq(24 * 6).all()
    assert sorted(logs["hour"].unique()) == list(range(24))


def test_cli_parquet(tmp_path: Path) -> None:
    out = tmp_path / "logs.parquet"
    assert main(["simulate", "--scenario", "steady", "--days", "2", "--out", str(out)]) == 0
    assert len(read_logs(out)) == 2 * 24 * 6


def test_deterministic_for_a_seed() -> None:
    first = simulate_logs("default", "even", days=3, seed=11)
    again = simulate_logs("default", "even", days=3, seed=11)
    other = simulate_logs("default", "even", days=3, seed=12)
    pd.testing.assert_frame_equal(first, again)
    assert not first["spend"].equals(other["spend"])


def test_budget_is_daily_and_weekdays_advance() -> None:
    scenario = get_scenario("steady")
    logs = simulate_logs(scenario, "even", days=8, seed=0, start_date=dt.date(2026, 3, 6))
    daily_spend = logs.groupby("date")["spend"].sum()
    assert (daily_spend <= scenario.budget + 0.01 * len(logs)).all()
    assert daily_spend.min() > 0.5 * scenario.budget
    assert [d.weekday() for d in daily_spend.index] == [4, 5, 6, 0, 1, 2, 3, 4]


def test_shock_on_one_campaign_day_only() -> None:
    days = 4
    calm = get_scenario("steady").replace(horizon_hours=24 * days)
    # Day 2 only (hours 48-71): feed clearing prices triple.
    war = calm.replace(
        shocks=(Shock("bid_war", start_hour=48, end_hour=72, factor=3.0, channel="feed"),)
    )
    a = simulate_logs(calm, "even", days=days, seed=5)
    b = simulate_logs(war, "even", days=days, seed=5)
    by_day = [d for _, d in a.groupby("date")], [d for _, d in b.groupby("date")]
    for day in (0, 1, 3):
        pd.testing.assert_frame_equal(by_day[0][day], by_day[1][day])
    feed = [(d["channel"] == "feed") for d in by_day[0]]
    win_calm = by_day[0][2].loc[feed[2], "win_rate"].mean()
    win_war = by_day[1][2].loc[feed[2], "win_rate"].mean()
    assert win_war < 0.5 * win_calm


def test_day_scenario_slices_shocks_across_midnight() -> None:
    scenario = get_scenario("steady").replace(
        horizon_hours=72,
        shocks=(Shock("creative_fatigue", start_hour=20, end_hour=50, factor=0.5, ramp_hours=6),),
        start_weekday=6,
    )
    first, second, third = (day_scenario(scenario, d) for d in range(3))
    assert len(first.shocks) == len(second.shocks) == len(third.shocks) == 1
    assert first.shocks[0].start_hour == 20 and first.shocks[0].end_hour is None
    assert first.shocks[0].ramp_hours == 6
    # Four ramp hours were played before midnight; two are left.
    assert second.shocks[0].start_hour == 0 and second.shocks[0].end_hour is None
    assert second.shocks[0].ramp_hours == 2
    # Hours 48 and 49 of the campaign, fully ramped.
    assert third.shocks[0].start_hour == 0 and third.shocks[0].end_hour == 2
    assert third.shocks[0].ramp_hours == 0
    assert day_scenario(scenario.replace(horizon_hours=96), 3).shocks == ()
    assert [s.start_weekday for s in (first, second, third)] == [6, 0, 1]
    assert {s.horizon_hours for s in (first, second, third)} == {24}


def test_one_day_scenario_replays_its_shocks_every_day() -> None:
    scenario = get_scenario("bid-war")
    assert day_scenario(scenario, 5).shocks == scenario.shocks


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--scenario", "no-such-preset"], "neither a preset nor a file"),
        (["--strategy", "no-such-strategy"], "unknown strategy"),
        (["--days", "0"], "between 1 and 366"),
        (["--start-date", "2026-13-01"], "YYYY-MM-DD"),
        (["--scenario", "steady", "--days", "3", "--out-suffix", ".xlsx"], "csv or .parquet"),
    ],
)
def test_cli_bad_input_does_no_harm(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suffix = ".csv"
    if "--out-suffix" in argv:
        suffix = argv[argv.index("--out-suffix") + 1]
        argv = argv[: argv.index("--out-suffix")]
    out = tmp_path / f"logs{suffix}"
    assert main(["simulate", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert not out.exists()
    out.write_bytes(b"precious\n")
    assert main(["simulate", *argv, "--out", str(out)]) == 2
    assert out.read_bytes() == b"precious\n"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_multi_day_scenario_bounds() -> None:
    scenario = get_scenario("steady").replace(horizon_hours=48)
    with pytest.raises(SimulationError, match="covers 2 days"):
        simulate_logs(scenario, "even", days=3, seed=0)
    with pytest.raises(SimulationError, match="whole number of days"):
        simulate_logs(scenario.replace(horizon_hours=30), "even", days=1, seed=0)


def test_rows_are_consistent() -> None:
    logs = simulate_logs("default", "even", days=2, seed=2)
    assert (logs["clicks"] <= logs["impressions"]).all()
    assert (logs["orders"] <= logs["clicks"]).all()
    active = logs["impressions"] > 0
    cpm = 1000 * logs.loc[active, "spend"] / logs.loc[active, "impressions"]
    big = logs.loc[active, "impressions"] > 1000
    assert np.allclose(cpm[big], logs.loc[active & big, "clearing_cpm"], rtol=0.01)


def test_simulate_says_when_it_replaces_a_log(tmp_path, capsys) -> None:
    from policies.cli import main

    out = tmp_path / "logs.csv"
    args = ["simulate", "--scenario", "steady", "--days", "3", "--prior", "true"]
    assert main([*args, "--out", str(out)]) == 0
    assert "replaced" not in capsys.readouterr().out
    assert main([*args, "--out", str(out)]) == 0
    assert f"replaced {out}" in capsys.readouterr().out


def test_a_shock_day_ends_the_history_with_a_drop_the_diagnosis_finds(tmp_path, capsys) -> None:
    from policies.cli import main

    out = tmp_path / "logs.csv"
    args = ["simulate", "--scenario", "default", "--strategy", "mpc", "--days", "10"]
    shock = ["--shock-day", "9:creative_fatigue:0.4:feed", "--prior", "true"]
    assert main([*args, *shock, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["diagnose", "--history", str(out), "--baseline-days", "7"]) == 0
    report = capsys.readouterr().out
    assert "DROP" in report and "in feed" in report and "creative_decline" in report


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("1:creative_fatigue:0.4:tv", "unknown channel"),
        ("7:bid_war:2", "days are 0 to 2"),
        ("1:traffic_shift:0.5:feed", "scenario file"),
        ("one:bid_war:2", "DAY:KIND:FACTOR"),
    ],
)
def test_a_bad_shock_day_is_refused_with_one_line(tmp_path, capsys, value, needle) -> None:
    from policies.cli import main

    out = tmp_path / "logs.csv"
    code = main(["simulate", "--days", "3", "--shock-day", value, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not out.exists()
