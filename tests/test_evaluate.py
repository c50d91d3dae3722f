"""Strategies behind one interface, the evaluator and the `autopilot evaluate` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs import PRESETS
from policies.cli import main
from policies.evaluate import evaluate_many, run_episode
from policies.strategy import UnknownStrategyError, make_strategy

BASELINES = ["even", "proportional", "pid", "online-lp", "mpc", "oracle"]
SUMMARY_KEYS = {
    "score_mean",
    "gmv_mean",
    "spend_mean",
    "roi_mean",
    "budget_violations",
    "roi_violation_rate",
    "pct_of_oracle",
}


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("name", BASELINES)
def test_every_strategy_respects_the_budget_on_every_preset(name, preset):
    result = run_episode(make_strategy(name), preset, seed=11)
    assert result.spend <= result.budget
    assert result.gmv >= 0
    assert result.trace["spend"].shape[1] == len(result.arm_names)


def test_same_seed_same_episode_for_every_strategy():
    for name in BASELINES:
        a = run_episode(make_strategy(name), "bid-war", seed=5)
        b = run_episode(make_strategy(name), "bid-war", seed=5)
        assert a.score == b.score
        assert np.array_equal(a.trace["bid_cpm"], b.trace["bid_cpm"])


def test_mpc_beats_the_simple_baselines_and_the_oracle_bounds_them():
    report = evaluate_many(["even", "pid", "mpc"], ["steady", "bid-war"], episodes=2, seed=3)
    for name, block in report["scenarios"].items():
        rows = block["strategies"]
        assert rows["mpc"]["score_mean"] > rows["even"]["score_mean"]
        assert rows["mpc"]["pct_of_oracle"] > 85.0
        assert rows["mpc"]["roi_violation_rate"] == 0.0
        if name == "bid-war":  # the pacer chases the budget into the war's prices
            assert rows["mpc"]["score_mean"] > 1.1 * rows["pid"]["score_mean"]
        assert rows["even"]["pct_of_oracle"] < 100.0
        assert rows["mpc"]["budget_violations"] == 0


def test_unknown_strategy_is_a_typed_error():
    with pytest.raises(UnknownStrategyError, match="use one of"):
        make_strategy("magic")


def test_evaluate_cli_writes_the_documented_json_and_plot(tmp_path, capsys):
    out, plot = tmp_path / "eval.json", tmp_path / "eval.png"
    code = main(
        [
            "evaluate",
            "--scenario",
            "steady",
            "--strategies",
            "mpc,even",
            "--episodes",
            "2",
            "--seed",
            "1",
            "--json",
            str(out),
            "--plot",
            str(plot),
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    rows = report["scenarios"]["steady"]["strategies"]
    assert set(rows) == {"mpc", "even"}  # the oracle ran, but was not asked for
    for row in rows.values():
        assert SUMMARY_KEYS <= set(row)
        assert 0 < row["pct_of_oracle"] < 150
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "steady" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--strategies", "mpc,magic"], "magic"),
        (["--scenario", "no-such-preset"], "no-such-preset"),
        (["--episodes", "0"], "--episodes"),
    ],
)
def test_evaluate_cli_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, capsys, args, needle
):
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--json", str(out), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert not out.exists()


def test_evaluate_cli_keeps_an_existing_file_on_error(tmp_path, capsys):
    out = tmp_path / "eval.json"
    out.write_text("previous results")
    assert main(["evaluate", "--json", str(out), "--strategies", "nope", "--no-progress"]) == 2
    assert out.read_text() == "previous results"


def test_evaluate_writes_the_plot_format_its_extension_names(tmp_path, capsys):
    """A .pdf used to receive PNG bytes: the format follows the extension, and an
    extension that names no supported format is refused before any episode runs."""
    args = ["evaluate", "--scenario", "steady", "--strategies", "even", "--episodes", "1"]
    for suffix, magic in ((".svg", b"<?xml"), (".pdf", b"%PDF")):
        plot = tmp_path / f"eval{suffix}"
        assert main([*args, "--plot", str(plot), "--no-progress"]) == 0
        assert plot.read_bytes().startswith(magic)
    capsys.readouterr()
    jpeg = tmp_path / "eval.jpeg"
    assert main([*args, "--plot", str(jpeg), "--json", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and ".png, .svg or .pdf" in err
    assert not jpeg.exists() and not (tmp_path / "e.json").exists()


def test_evaluate_and_simulate_take_either_spelling_of_the_strategy_flag(tmp_path, capsys):
    args = ["evaluate", "--scenario", "steady", "--strategy", "even", "--episodes", "1"]
    assert main([*args, "--no-progress", "--prior", "true"]) == 0
    assert "even" in capsys.readouterr().out
    out = tmp_path / "logs.csv"
    sim = ["simulate", "--scenario", "steady", "--strategies", "pid", "--days", "3"]
    assert main([*sim, "--out", str(out), "--prior", "true"]) == 0
    assert out.exists()


@pytest.mark.parametrize("command", ["evaluate", "simulate", "recommend", "diagnose", "train"])
def test_every_help_shows_the_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: " in text
    if command in ("evaluate", "simulate"):
        assert "(default: 0)" in text  # the seed


def test_the_demo_runs_and_writes_its_plot(tmp_path, capsys):
    from policies.cli import main

    plot = tmp_path / "demo.png"
    assert main(["demo", "--episodes", "1", "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "ppo-mpc" in printed and "oracle" in printed and plot.stat().st_size > 1000
