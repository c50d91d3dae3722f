"""The response model learned from logs (``bidder.empirical``, ``recommend --model``).

Covers: the curves are non-decreasing in the bid and stay the closed form where the logs
never bid; in the range the logs cover they are closer to the true market than the
closed form on a GSP channel; without win rates the model plans exactly as the closed
form; a plan made with it keeps the budget; an unknown model is refused in one line.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from bidder.empirical import GRID, _isotonic, fit_empirical
from bidder.recommend import fit_market, recommend
from bidder.response import PARAMETRIC
from envs.market import build_episode, expected_hour
from envs.presets import get_scenario
from policies.cli import main
from policies.simulate import day_scenario, simulate_logs


@pytest.fixture(scope="module")
def gsp_history() -> pd.DataFrame:
    return simulate_logs("gsp-feed", "pid", 14, 0)


def next_day(logs: pd.DataFrame) -> dt.date:
    return logs["date"].max().date() + dt.timedelta(days=1)


def test_isotonic_regression_is_the_closest_non_decreasing_sequence():
    values, weights = np.array([1.0, 3.0, 2.0, 2.0, 5.0]), np.array([1.0, 1.0, 1.0, 2.0, 1.0])
    fitted = _isotonic(values, weights)
    assert np.all(np.diff(fitted) >= 0)
    assert fitted.tolist() == pytest.approx([1.0, 2.25, 2.25, 2.25, 5.0])
    assert (fitted * weights).sum() == pytest.approx((values * weights).sum())


def test_curves_are_monotone_and_the_closed_form_where_the_logs_never_bid(gsp_history):
    fitted = fit_market(gsp_history, next_day(gsp_history))
    model = fit_empirical(gsp_history, fitted)
    assert np.all(np.diff(model.win, axis=1) >= -1e-12)
    assert np.all(np.diff(model.pay, axis=1) >= -1e-12)
    assert model.hours.sum() > 0 and (model.hours == 0).any()
    # Far from every logged bid, the closed form's curve.
    from bidder.empirical import _prior_curves

    prior_win, _ = _prior_curves(fitted)
    far = np.abs(GRID) >= 3.5
    assert np.allclose(model.win[:, far], prior_win[:, far], atol=1e-3)


def test_in_the_logged_range_it_is_closer_to_a_gsp_market_than_the_closed_form(gsp_history):
    fitted = fit_market(gsp_history, next_day(gsp_history))
    model = fit_empirical(gsp_history, fitted)
    scenario = day_scenario(get_scenario("gsp-feed"), 14)
    truth = build_episode(scenario.replace(shocks=()))
    order = [fitted.arms.index((a.product, a.channel)) for a in scenario.arms]
    gsp = np.array([a.channel in ("feed", "live") for a in scenario.arms])
    errors = {"parametric": [], "empirical": []}
    for hour in (10, 14, 20):
        for multiple in (0.6, 0.8, 1.0, 1.2):  # where a PID pacer's bids stood
            bids = truth.price_median[hour] * multiple
            real = expected_hour(truth, hour, bids).spend
            grid = np.zeros((24, len(fitted.arms)))
            grid[hour, order] = bids
            for name, m in (("parametric", PARAMETRIC), ("empirical", model)):
                spend = m.response(fitted.market, grid)[0][hour, order]
                errors[name].append(np.abs(np.log(spend[gsp] / real[gsp])))
    assert np.mean(errors["empirical"]) < np.mean(errors["parametric"])


def test_without_win_rates_it_plans_as_the_closed_form(gsp_history):
    logs = gsp_history.drop(columns=["win_rate"])
    date = next_day(logs)
    a = recommend(logs, 60_000, 5.0, date, model="parametric")
    b = recommend(logs, 60_000, 5.0, date, model="empirical")
    assert np.allclose(a.table["bid"], b.table["bid"])
    assert b.summary["response_model"] == "empirical"


def test_a_plan_with_the_learned_model_keeps_the_budget(gsp_history):
    for budget in (5_000.0, 60_000.0, 1e9):
        rec = recommend(gsp_history, budget, 5.0, next_day(gsp_history), model="empirical")
        assert rec.table["planned_spend"].sum() <= budget


def test_an_unknown_model_is_refused_in_one_line(tmp_path, capsys, gsp_history):
    from bidder.logs import write_logs

    history, out = tmp_path / "logs.csv", tmp_path / "recs.csv"
    write_logs(gsp_history, history)
    args = ["recommend", "--history", str(history), "--budget", "60k", "--roi-target", "5"]
    with pytest.raises(SystemExit) as exit_:  # argparse's choices, in one line
        main([*args, "--date", "2026-02-01", "--out", str(out), "--model", "neural"])
    code = exit_.value.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--model" in err[0], err
    assert not out.exists()
