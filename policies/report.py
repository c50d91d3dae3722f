"""One self-contained HTML page a marketer opens: the plan, the diagnosis, the evaluation.

A report is built from sections (:func:`recommendation_section`, :func:`diagnosis_section`,
:func:`evaluation_section`), each from the same objects the commands print and write, so
the page never says anything the JSON does not. The page needs nothing beside it: styles
are inline, figures are PNG data URIs, and it carries no script at all; its
Content-Security-Policy forbids scripts and every outside resource, so a product or
channel name from an untrusted log file can neither run nor fetch anything (names are
also HTML-escaped).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.errors import InputError
from envs.io import check_output_path
from envs.scenario import KNOWN_CHANNELS

#: Extensions a report file may have.
REPORT_SUFFIXES = (".html", ".htm")

#: The colours matplotlib calls C0..C9, so that a channel has one colour in the figures
#: and on the page (:data:`policies.plots.CHANNEL_COLOURS` uses the same order).
_TAB10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
CHANNEL_HEX = {name: _TAB10[i % len(_TAB10)] for i, name in enumerate(KNOWN_CHANNELS)}

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2430;
  margin: 0 auto; max-width: 1180px; padding: 24px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 21px; margin: 36px 0 8px;
  border-bottom: 2px solid #dde3ec; padding-bottom: 4px; } h3 { font-size: 17px; margin: 22px 0 6px; }
.meta { color: #5b6575; font-size: 13px; }
.lead { font-size: 16px; margin: 8px 0 14px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0 16px; }
.card { border: 1px solid #dde3ec; border-radius: 8px; padding: 8px 14px; min-width: 130px; }
.card .label { color: #5b6575; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.card .value { font-size: 20px; font-weight: 600; }
.ok { color: #1a7f37; } .bad { color: #c0392b; } .warn { background: #fff4d6;
  border-left: 4px solid #e0a800; padding: 6px 10px; margin: 6px 0; }
.note { background: #eef4fb; border-left: 4px solid #1f77b4; padding: 6px 10px; margin: 6px 0; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e7ebf1; text-align: right; }
th { background: #f4f6f9; font-weight: 600; } td.name, th.name { text-align: left; }
.chan { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; }
table.heat td { padding: 2px 3px; font-size: 11px; min-width: 30px; border: 1px solid #fff; }
.bar { display: inline-block; height: 10px; background: #c0392b; vertical-align: middle; }
.cause { margin: 4px 0 10px; } .cause .what { font-weight: 600; }
img.figure { max-width: 100%; border: 1px solid #e7ebf1; }
footer { margin-top: 40px; color: #5b6575; font-size: 12px; }
"""


class ReportError(InputError):
    """A report path or input that cannot make a report."""


def check_report_path(path: str | Path) -> Path:
    """Refuse, before any work, a report path that is not an ``.html`` file one can write."""
    path = Path(path)
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise ReportError(f"{path}: a report is an HTML page; end the file name in .html")
    return check_output_path(path, "report")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _channel_tag(channel: str) -> str:
    colour = CHANNEL_HEX.get(channel, "#7f7f7f")
    return f'<span class="chan" style="background:{colour}"></span>{_e(channel)}'


def _card(label: str, value: str, css: str = "") -> str:
    cls = f"value {css}".strip()
    return (
        f'<div class="card"><div class="label">{_e(label)}</div>'
        f'<div class="{cls}">{_e(value)}</div></div>'
    )


def _table(headers: list[str], rows: list[list[str]], names: int = 1) -> str:
    """An HTML table; the first ``names`` columns are left-aligned text. Cells are HTML
    already (callers escape what they put in)."""
    head = "".join(
        f'<th class="name">{_e(h)}</th>' if i < names else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="name">{cell}</td>' if i < names else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Section:
    """A titled part of the page: ``body`` is HTML whose every outside value is escaped."""

    title: str
    body: str


@dataclass
class Report:
    """The page: a title, a line saying where it comes from, and its sections."""

    title: str
    meta: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, section: Section) -> Report:
        self.sections.append(section)
        return self

    def html(self) -> str:
        made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(self.title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{_e(self.title)}</h1>",
            f'<div class="meta">{_e(self.meta)}</div>' if self.meta else "",
        ]
        for section in self.sections:
            parts.append(f"<section><h2>{_e(section.title)}</h2>{section.body}</section>")
        parts.append(f"<footer>budget-autopilot report, made {made}.</footer></body></html>")
        return "\n".join(p for p in parts if p) + "\n"


# --- the plan --------------------------------------------------------------------------


def _heat_colour(share: float) -> str:
    """White to deep blue as ``share`` goes from 0 to 1 (0 exactly: grey, no bid)."""
    if not share > 0:
        return "#eceff3"
    share = min(1.0, share)
    low, high = np.array([232, 241, 251]), np.array([16, 78, 139])
    r, g, b = (low + (high - low) * share).round().astype(int)
    return f"#{r:02x}{g:02x}{b:02x}"


def bid_heatmap(table: Any) -> str:
    """The plan as a table of bids per arm (rows) and hour (columns): each cell's text is
    the bid (CPM), its shade the bid against the arm's mean bid of the day (the middle
    shade: the mean; 20% above it or more: the darkest), and its tooltip the hour's
    planned spend and expected GMV."""
    hours = sorted(int(h) for h in table["hour"].unique())
    arms = table[["product", "channel"]].drop_duplicates().itertuples(index=False)
    by_arm = {key: rows for key, rows in table.groupby(["product", "channel"], sort=False)}
    head = '<th class="name">product</th><th class="name">channel</th>' + "".join(
        f"<th>{h}</th>" for h in hours
    )
    rows = []
    for product, channel in arms:
        rows_of_arm = by_arm[(product, channel)].set_index("hour")
        rates = (
            rows_of_arm["commission_rate"].to_numpy(dtype=float)
            if "commission_rate" in rows_of_arm.columns
            else np.full(len(rows_of_arm), np.nan)
        )
        paid = bool(np.isfinite(rates).any())  # a commission arm: its lever is the rate
        if paid:
            rows_of_arm = rows_of_arm.assign(bid=np.nan_to_num(rates))
        bids = rows_of_arm["bid"].to_numpy(dtype=float)
        mean = float(bids[bids > 0].mean()) if (bids > 0).any() else 0.0
        cells = []
        for hour in hours:
            if hour not in rows_of_arm.index:
                cells.append("<td></td>")
                continue
            row = rows_of_arm.loc[hour]
            bid = float(row["bid"])
            # 0 is "no bid" (grey); the arm's mean bid takes the middle shade.
            share = 0.0 if bid <= 0 else float(np.clip(0.55 + 2.25 * (bid / mean - 1), 0.1, 1))
            text_colour = "#fff" if share > 0.55 else "#1d2430"
            lever = f"commission rate {bid:.1%} of GMV" if paid else f"bid {bid:.2f} CPM"
            tip = (
                f"{product} in {channel}, hour {hour}: {lever}, planned spend "
                f"{float(row['planned_spend']):,.2f}, expected GMV {float(row['expected_gmv']):,.2f}"
            )
            shown = f"{bid:.0%}" if paid else f"{bid:.1f}"
            cells.append(
                f'<td style="background:{_heat_colour(share)};color:{text_colour}" '
                f'title="{_e(tip)}">{shown}</td>'
            )
        rows.append(
            f'<tr><td class="name">{_e(product)}</td><td class="name">'
            f"{_channel_tag(channel)}</td>{''.join(cells)}</tr>"
        )
    return (
        f'<table class="heat"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        '<div class="meta">Bid per thousand impressions (CPM) by hour of the day. The shade '
        "compares an arm's hours with each other: the middle shade is the arm's mean bid of "
        "the day, darker is higher (20% above the mean or more: the darkest), lighter is "
        "lower; grey: no bid. Arms paid by commission show their rate, a percentage of "
        "GMV, the same way. Hover a cell for its planned spend and expected GMV.</div>"
    )


def recommendation_section(table: Any, summary: dict[str, Any]) -> Section:
    """Tomorrow's plan in plain words, its figures, the breakdowns and the bid heat-map.

    Args:
        table: the recommendation rows (``bidder.recommend.RECOMMENDATION_COLUMNS``).
        summary: the recommendation's summary, as ``recommend`` writes it to JSON.
    """
    s = summary
    met = bool(s["roi_target_met"])
    verdict = (
        f"meets the ROI target {s['roi_target']:g}"
        if met
        else f"misses the ROI target {s['roi_target']:g} (short by {s['roi_shortfall']:.2f})"
    )
    lead = (
        f"For {s['date']} the plan spends {_money(s['planned_spend'])} of the "
        f"{_money(s['budget'])} budget across {s['arms']} arms for an expected GMV of "
        f"{_money(s['expected_gmv'])}: expected ROI {s['expected_roi']:.2f}, which {verdict}."
    )
    cards = "".join(
        [
            _card("budget", _money(s["budget"])),
            _card("planned spend", _money(s["planned_spend"])),
            _card("expected GMV", _money(s["expected_gmv"])),
            _card("expected ROI", f"{s['expected_roi']:.2f}", "ok" if met else "bad"),
            _card("ROI target", f"{s['roi_target']:g}"),
            _card("budget left", _money(s["budget_left"])),
        ]
    )
    risk = s.get("spend_risk") or {}
    parts = [f'<p class="lead">{_e(lead)}</p>', f'<div class="cards">{cards}</div>']
    explanation = str(s["explanation"])
    parts.append(f"<p>{_e(explanation[:1].upper() + explanation[1:])}</p>")
    if s.get("budget_note"):
        parts.append(f'<div class="note">{_e(s["budget_note"])}</div>')
    if risk:
        parts.append(
            "<p>Without the platform's delivery cap (which stops spend at the budget) the "
            f"day's spend stays below {_money(risk['p95'])} with 95% probability and exceeds "
            f"the budget with probability {100 * risk['probability_over_budget']:.0f}%.</p>"
        )
    for text in s.get("warnings", []):
        parts.append(f'<div class="warn">warning: {_e(text)}</div>')
    for text in s.get("notes", []):
        parts.append(f'<div class="note">{_e(text)}</div>')
    history = s.get("history") or {}
    if history:
        parts.append(
            f'<p class="meta">Fitted from {history.get("days", "?")} days of logs '
            f"({_e(history.get('first_date', '?'))} to {_e(history.get('last_date', '?'))}); "
            f"plan: {_e(s.get('plan', ''))}; solver {_e(s.get('solver', ''))}.</p>"
        )

    parts.append("<h3>By channel</h3>")
    rows = [
        [_channel_tag(name), _money(v["planned_spend"]), _money(v["expected_gmv"])]
        + [f"{v['expected_roi']:.2f}"]
        for name, v in s["by_channel"].items()
    ]
    parts.append(_table(["channel", "planned spend", "expected GMV", "expected ROI"], rows))
    parts.append("<h3>By arm</h3>")
    rows = []
    for arm in s["by_arm"]:
        change = arm.get("bid_change")
        change_text = "-" if change is None else f"{100 * change:+.0f}%"
        rows.append(
            [
                _e(arm["product"]),
                _channel_tag(arm["channel"]),
                _money(arm["planned_spend"]),
                _money(arm["expected_gmv"]),
                f"{arm['expected_roi']:.2f}",
                f"{arm['mean_bid']:.2f}",
                "-" if arm.get("last_day_mean_bid") is None else f"{arm['last_day_mean_bid']:.2f}",
                change_text,
            ]
        )
    parts.append(
        _table(
            [
                "product",
                "channel",
                "planned spend",
                "expected GMV",
                "expected ROI",
                "mean bid (CPM)",
                "last day's mean bid",
                "bid change",
            ],
            rows,
            names=2,
        )
    )
    parts.append("<h3>Bids by hour</h3>")
    parts.append(bid_heatmap(table))
    return Section(f"Plan for {s['date']}", "".join(parts))


# --- the diagnosis ---------------------------------------------------------------------


def diagnosis_section(diagnosis: dict[str, Any]) -> Section:
    """Every ROI drop with its causes, their evidence and the action each calls for.

    Args:
        diagnosis: ``bidder.diagnose.Diagnosis.to_dict()``, as ``diagnose --json`` prints it.
    """
    d = diagnosis
    units = d.get("units", [])
    campaign = next((u for u in units if u["scope"] == "campaign"), None)
    parts = []
    baseline = d.get("baseline_dates") or []
    compared = (
        f"the same hours of {baseline[0]} to {baseline[-1]}" if baseline else "the trailing days"
    )
    if campaign is not None:
        parts.append(
            f'<p class="lead">{_e(d["date"])}: campaign ROI {campaign["roi"]:.2f} against '
            f"{campaign['baseline_roi']:.2f} on {_e(compared)} "
            f"({100 * campaign['change']:+.0f}%).</p>"
        )
    drops = d.get("drops", [])
    if not drops:
        parts.append(
            '<p class="ok">No significant ROI drop: every campaign, product and arm stayed '
            "within its normal day-to-day range.</p>"
        )
    for drop in drops:
        parts.append(
            f"<h3>ROI drop: {_e(drop['name'])}</h3><p>ROI {drop['roi']:.2f} against "
            f'{drop["baseline_roi"]:.2f} (<span class="bad">{100 * drop["change"]:+.0f}%</span>'
            f"; the alarm is at {100 * np.expm1(-drop['threshold']):+.0f}%, beyond an "
            "ordinary day's spread).</p>"
        )
        if drop.get("note"):
            parts.append(f'<div class="note">{_e(drop["note"])}</div>')
        for cause in drop.get("causes", []):
            width = max(2, round(160 * float(cause["share"])))
            parts.append(
                f'<div class="cause"><span class="bar" style="width:{width}px"></span> '
                f'<span class="what">{_e(cause["cause"].replace("_", " "))}</span> '
                f"{100 * cause['share']:.0f}% of the drop: {_e(cause['explanation'])}."
                f"<br>evidence: {_e(cause['evidence'])}<br>action: {_e(cause['action'])}</div>"
            )
    judged = [u for u in units if u.get("judged")]
    if judged:
        rows = [
            [
                _e(u.get("name") or u["scope"]),
                f"{u['baseline_roi']:.2f}",
                f"{u['roi']:.2f}",
                f"{100 * u['change']:+.0f}%",
                '<span class="bad">drop</span>' if u["dropped"] else "normal",
            ]
            for u in judged
        ]
        parts.append("<h3>Every campaign, product and arm judged</h3>")
        parts.append(_table(["unit", "baseline ROI", "ROI", "change", "verdict"], rows))
    return Section(f"Diagnosis of {d['date']}", "".join(parts))


# --- the evaluation --------------------------------------------------------------------


def _figure_png(per_strategy: dict, title: str, oracle: list | None) -> bytes:
    from policies.plots import strategy_figure_writer

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "figure.png"
        strategy_figure_writer(per_strategy, title, "png", oracle)(path)
        return path.read_bytes()


def evaluation_section(
    report: dict[str, Any], results: dict[str, dict[str, list]] | None = None
) -> Section:
    """Every strategy on every scenario: the table ``evaluate`` prints, and its figure.

    Args:
        report: :func:`policies.evaluate.evaluate_many`'s report (without ``_results``).
        results: its ``_results`` (episode traces), for the figures; none: tables only.
    """
    from policies.evaluate import PRIOR_LABELS

    prior = report.get("prior")
    parts = []
    if prior is not None:
        parts.append(
            f'<p class="lead">{report["episodes"]} episodes per strategy from seed '
            f"{report['seed']}; prior {_e(prior)}: {_e(PRIOR_LABELS.get(prior, ''))}. The "
            "oracle knows each episode's true market and plans at the ROI target exactly: "
            "a reference, not a bound.</p>"
        )
    for name, block in report["scenarios"].items():
        parts.append(
            f"<h3>{_e(name)}</h3><p>budget {_money(block['budget'])}, ROI target "
            f"{block['roi_target']:g}</p>"
        )
        rows = []
        for strategy, row in block["strategies"].items():
            pct = row["pct_of_oracle"]
            rows.append(
                [
                    _e(strategy),
                    _money(row["score_mean"]),
                    "-" if pct is None else f"{pct:.1f}%",
                    _money(row["gmv_mean"]),
                    _money(row["spend_mean"]),
                    f"{row['roi_mean']:.2f}",
                    f"{100 * row['roi_violation_rate']:.0f}%",
                    str(row["budget_violations"]),
                ]
            )
        parts.append(
            _table(
                [
                    "strategy",
                    "mean score",
                    "% of oracle",
                    "mean GMV",
                    "mean spend",
                    "mean ROI",
                    "ROI missed (% of days)",
                    "overspent (days)",
                ],
                rows,
            )
        )
        if results and name in results:
            per_strategy = {s: results[name][s] for s in block["strategies"]}
            png = _figure_png(per_strategy, name, results[name].get("oracle"))
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<img class="figure" alt="{_e(name)}: every strategy on shared axes" '
                f'src="data:image/png;base64,{data}">'
            )
    return Section("Strategies compared", "".join(parts))


# --- rendering in a browser ------------------------------------------------------------

#: Chromium's names on the systems we know; ``AUTOPILOT_BROWSER`` overrides them.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Flags for a headless Chromium on a machine without a display, a sandbox or a network.
_BROWSER_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_browser() -> str | None:
    """The path of a Chromium to render reports with: ``AUTOPILOT_BROWSER``, else the
    first of :data:`BROWSER_NAMES` on the ``PATH``; none if there is none."""
    import shutil

    given = os.environ.get("AUTOPILOT_BROWSER")
    if given:
        return given
    return next((found for name in BROWSER_NAMES if (found := shutil.which(name))), None)


@dataclass
class Rendered:
    """What a browser saw of a page: its title, visible text, and every console message,
    uncaught error and failed request (``problems``; a sound report has none)."""

    title: str
    text: str
    problems: list[str]


def render_page(
    page: str | Path, screenshot: str | Path | None = None, width: int = 1280
) -> Rendered:
    """Open a local HTML file in headless Chromium (through Playwright) and report what it
    saw; with ``screenshot``, also write a full-page PNG of it.

    Raises:
        ReportError: Playwright or a Chromium is missing (the message says how to get them).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ReportError(
            "rendering a report needs Playwright; install the dev extra: pip install -e '.[dev]'"
        ) from None
    browser_path = find_browser()
    if browser_path is None:
        raise ReportError(
            "rendering a report needs Chromium; install it (Debian: apt-get install chromium) "
            "or set AUTOPILOT_BROWSER to its path"
        )
    if not (Path(browser_path).is_file() and os.access(browser_path, os.X_OK)):
        raise ReportError(
            f"{browser_path}: no Chromium program there; set AUTOPILOT_BROWSER to Chromium's "
            "path, or unset it to use the one on the PATH"
        )
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=_BROWSER_FLAGS)
        try:
            tab = browser.new_page(viewport={"width": width, "height": 900})
            tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
            tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            tab.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            tab.goto(Path(page).resolve().as_uri(), wait_until="load")
            title, text = tab.title(), tab.inner_text("body")
            if screenshot is not None:
                tab.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Rendered(title, text, problems)
