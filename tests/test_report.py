"""The HTML report (``autopilot report``, ``--report`` on recommend, diagnose and
evaluate): it says what the JSON says, it is checked before any work, it carries no
script and escapes what the logs hold, and a real headless browser opens it without a
console error and draws a page that is not blank."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from policies.cli import main
from policies.report import ReportError, find_browser, render_page

SHOCK = "13:creative_fatigue:0.4:feed"  # the feed's creatives wear out on the last day


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "logs.csv"
    args = ["simulate", "--scenario", "default", "--strategy", "mpc", "--days", "14"]
    args += ["--seed", "0", "--start-date", "2026-01-01", "--shock-day", SHOCK]
    assert main([*args, "--out", str(path)]) == 0
    return path


def report_args(history: Path, out: Path, *extra: str) -> list[str]:
    return ["report", "--history", str(history), "--budget", "120k", "--roi-target", "4"] + [
        "--out",
        str(out),
        *extra,
    ]


def one_line_refusal(code: int, capsys, *fragments: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def visible_text(page: str) -> str:
    """The page's text without tags, styles or entities, as a reader sees it."""
    body = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", body)
    return re.sub(r"\s+", " ", html.unescape(text))


# -- what the page says -----------------------------------------------------------------
def test_the_report_holds_the_diagnosis_and_the_plan_the_commands_give(history, tmp_path, capsys):
    page_path = tmp_path / "report.html"
    assert main(report_args(history, page_path)) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {page_path}: 2026-01-14 has 2 ROI drop(s)"), line
    recs, diagnosis_json = tmp_path / "recs.csv", tmp_path / "diagnosis.json"
    recommend = ["recommend", "--history", str(history), "--budget", "120000"]
    recommend += ["--roi-target", "4", "--date", "2026-01-15", "--out", str(recs)]
    assert main(recommend) == 0
    assert main(["diagnose", "--history", str(history), "--json", str(diagnosis_json)]) == 0
    summary = json.loads(recs.with_suffix(".json").read_text())
    diagnosis = json.loads(diagnosis_json.read_text())

    page = page_path.read_text()
    text = visible_text(page)
    # The plan's figures, as the summary gives them.
    assert f"spends {summary['planned_spend']:,.0f} of the 120,000 budget" in text
    assert f"expected GMV of {summary['expected_gmv']:,.0f}" in text
    assert f"expected ROI {summary['expected_roi']:.2f}, which meets the ROI target 4" in text
    for channel, figures in summary["by_channel"].items():
        assert f"{channel} {figures['planned_spend']:,.0f} {figures['expected_gmv']:,.0f}" in text
    for note in summary["notes"]:
        assert note in text
    # The heat-map: one cell per arm and hour, its text the recommended bid.
    rows = pd.read_csv(recs)
    cells = re.findall(
        r'<td style="background:#[0-9a-f]{6};color:#[0-9a-f]{3,6}" title="([^"]*)">([^<]*)</td>',
        page,
    )
    assert len(cells) == len(rows) == summary["arms"] * 24
    first = rows.iloc[0]
    assert cells[0][1] == f"{first['bid']:.1f}"
    assert f"hour {first['hour']}: bid {first['bid']:.2f} CPM" in cells[0][0]
    # Every drop with every cause, its evidence and its action.
    assert diagnosis["drops"], "the shocked history must end with a drop"
    for drop in diagnosis["drops"]:
        assert f"ROI drop: {drop['name']}" in text
        for cause in drop["causes"]:
            assert f"evidence: {cause['evidence']}" in text
            assert f"action: {cause['action']}" in text
    # Self-contained and inert.
    assert "<script" not in page.lower()
    assert "default-src 'none'" in page
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_a_binding_target_is_met_and_the_budget_left_is_explained(history, tmp_path, capsys):
    page_path = tmp_path / "report.html"
    args = ["recommend", "--history", str(history), "--budget", "120000", "--roi-target", "60"]
    args += ["--date", "2026-01-15", "--out", str(tmp_path / "r.csv"), "--report", str(page_path)]
    assert main(args) == 0
    summary = json.loads((tmp_path / "r.json").read_text())
    text = visible_text(page_path.read_text())
    assert summary["roi_target_met"] and summary["budget_note"]  # the target binds at 60
    assert "which meets the ROI target 60" in text
    assert '<div class="value ok">' in page_path.read_text()
    assert summary["budget_note"] in text


def test_a_missed_target_is_said_in_red_not_as_met(history, tmp_path):
    # No target this history allows is missed (above the best reachable ROI recommend
    # refuses), so the miss is written into a real plan's summary.
    from bidder.logs import read_logs
    from bidder.recommend import recommend
    from policies.report import recommendation_section

    plan = recommend(read_logs(history), 120000, 4, dt.date(2026, 1, 15))
    summary = plan.summary | {"roi_target_met": False, "roi_shortfall": 0.5}
    body = recommendation_section(plan.table, summary).body
    text = visible_text(body)
    assert "which misses the ROI target 4 (short by 0.50)" in text
    assert "which meets" not in text
    assert '<div class="value bad">' in body


def test_names_from_the_logs_are_escaped(history, tmp_path, capsys):
    hostile = '<img src=x onerror="alert(1)">'
    frame = pd.read_csv(history, dtype=str)
    frame["product"] = frame["product"].replace({"serum": hostile})
    logs = tmp_path / "hostile.csv"
    frame.to_csv(logs, index=False)
    page_path = tmp_path / "report.html"
    assert main(report_args(logs, page_path)) == 0
    page = page_path.read_text()
    assert hostile not in page
    assert html_escaped(hostile) in page
    assert hostile in visible_text(page)


def html_escaped(text: str) -> str:
    return html.escape(text, quote=True)


# -- refused before any work ------------------------------------------------------------
@pytest.mark.parametrize("name", ["report.pdf", "report", "report.png"])
def test_a_report_that_is_not_html_is_refused_before_any_work(history, tmp_path, capsys, name):
    out = tmp_path / name
    code = main(report_args(history, out))
    one_line_refusal(code, capsys, "end the file name in .html")
    assert not out.exists()
    recs = tmp_path / "recs.csv"
    args = ["recommend", "--history", str(history), "--budget", "1000", "--roi-target", "4"]
    args += ["--date", "2026-01-15", "--out", str(recs), "--report", str(out)]
    one_line_refusal(main(args), capsys, "end the file name in .html")
    assert not recs.exists() and not recs.with_suffix(".json").exists()


def test_a_report_over_its_input_or_in_a_folder_is_refused(history, tmp_path, capsys):
    folder = tmp_path / "a.html"
    folder.mkdir()
    one_line_refusal(main(report_args(history, folder)), capsys, "is a folder")
    html_input = tmp_path / "logs.html"
    html_input.write_bytes(history.read_bytes())
    before = html_input.read_bytes()
    code = main(["diagnose", "--history", str(html_input), "--report", str(html_input)])
    one_line_refusal(code, capsys, "this output is the input")
    assert html_input.read_bytes() == before


def test_a_planned_day_inside_the_history_is_refused(history, tmp_path, capsys):
    code = main(report_args(history, tmp_path / "r.html", "--date", "2026-01-10"))
    one_line_refusal(code, capsys, "the history runs to 2026-01-14", "2026-01-15")


# -- the other commands' --report -------------------------------------------------------
def test_recommend_writes_the_report_with_its_outputs_and_says_so(history, tmp_path, capsys):
    recs, page = tmp_path / "recs.csv", tmp_path / "plan.html"
    args = ["recommend", "--history", str(history), "--budget", "120000", "--roi-target", "4"]
    args += ["--date", "2026-01-15", "--out", str(recs), "--report", str(page)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"wrote {page}" in out
    summary = json.loads(recs.with_suffix(".json").read_text())
    assert summary["run_id"] in page.read_text()  # one run: the rows, the summary, the page
    assert main(args) == 0
    assert f"replaced {page}" in capsys.readouterr().out


def test_diagnose_json_takes_a_path_or_prints_and_writes_the_report(history, tmp_path, capsys):
    as_json, page = tmp_path / "d.json", tmp_path / "d.html"
    args = ["diagnose", "--history", str(history), "--json", str(as_json), "--report", str(page)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "DROP" in out  # the text report is printed when the JSON goes to a file
    assert f"wrote {as_json}" in out and f"wrote {page}" in out
    written = json.loads(as_json.read_text())
    assert main(["diagnose", "--history", str(history), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == written
    assert "ROI drop: serum in feed" in visible_text(page.read_text())


def test_evaluate_report_carries_the_table_and_the_figure(tmp_path, capsys):
    page, as_json = tmp_path / "eval.html", tmp_path / "eval.json"
    args = ["evaluate", "--scenario", "default", "--strategies", "mpc,even", "--episodes", "1"]
    args += ["--prior", "true", "--no-progress", "--json", str(as_json), "--report", str(page)]
    assert main(args) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    report = json.loads(as_json.read_text())
    html_text = page.read_text()
    text = visible_text(html_text)
    for name, row in report["scenarios"]["default"]["strategies"].items():
        assert f"{name} {row['score_mean']:,.0f} {row['pct_of_oracle']:.1f}%" in text
    (data,) = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)
    assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["run_id"] in html_text
    # Bare --json prints the JSON instead of the table, parseable as it is.
    assert main([*args[:-4], "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["scenarios"]["default"]["strategies"].keys() == {"mpc", "even"}


# -- in a real browser ------------------------------------------------------------------
def browser_or_skip() -> None:
    if find_browser() is not None:
        return
    if os.environ.get("AUTOPILOT_REQUIRE_BROWSER"):
        pytest.fail("no Chromium found; `make browser` installs it (or set AUTOPILOT_BROWSER)")
    pytest.skip("no Chromium here; `make test` installs it and runs this test")


def test_the_report_opens_in_a_browser_without_errors_and_is_not_blank(history, tmp_path):
    browser_or_skip()
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    assert main(report_args(history, page)) == 0
    rendered = render_page(page, shot)
    assert rendered.problems == []
    assert rendered.title == "Autopilot report: 2026-01-14 diagnosed, 2026-01-15 planned"
    assert "ROI drop: serum in feed" in rendered.text and "Bids by hour" in rendered.text
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[1] == 1280 and image.shape[0] > 1500  # the whole page, not a viewport
    not_white = (image < 245).any(axis=2).mean()
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    assert not_white > 0.05 and colours > 50, (not_white, colours)


def test_the_browser_check_sees_what_a_broken_page_does(tmp_path):
    """The check above can fail: a script the policy blocks, a missing image and an
    uncaught error are all seen."""
    browser_or_skip()
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><title>b</title></head><body><p>x</p>"
        '<img src="missing.png"><script>undefinedFunction();</script></body></html>'
    )
    rendered = render_page(broken)
    kinds = " | ".join(rendered.problems)
    assert "page error" in kinds and "undefinedFunction" in kinds, kinds
    assert "missing.png" in kinds, kinds


def test_the_hostile_name_runs_nothing_in_the_browser(history, tmp_path):
    browser_or_skip()
    frame = pd.read_csv(history, dtype=str)
    frame["product"] = frame["product"].replace({"serum": '<img src=x onerror="alert(1)">'})
    logs = tmp_path / "hostile.csv"
    frame.to_csv(logs, index=False)
    page = tmp_path / "report.html"
    assert main(report_args(logs, page)) == 0
    rendered = render_page(page)
    assert rendered.problems == []  # no dialog, no request for "x"
    assert '<img src=x onerror="alert(1)"> in feed' in rendered.text


def test_rendering_without_a_browser_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_BROWSER", str(tmp_path / "no-such-browser"))
    page = tmp_path / "p.html"
    page.write_text("<html><body>x</body></html>")
    with pytest.raises(ReportError, match="no-such-browser: no Chromium program there"):
        render_page(page)
