"""Many nightly recommendations in one run: ``autopilot recommend --batch FILE --out-dir OUT``.

A batch file is TOML with one ``[[campaign]]`` table per campaign::

    [[campaign]]
    id = "shop-17"             # letters, digits, '-', '_', '.'; names the outputs
    history = "logs/shop-17.csv"   # relative to the batch file
    budget = 50000             # or "50k", "5w"
    roi_target = 4             # or "400%"
    date = "2026-01-19"
    budget_risk = 0.05         # optional, as --budget-risk

Each campaign is planned exactly as ``autopilot recommend --history H --budget B
--roi-target R --date D --out OUT/<id>.csv`` plans it (the same functions), and writes the
same pair of files, ``OUT/<id>.csv`` and ``OUT/<id>.json``, atomically and as one pair.
``OUT/batch_report.csv`` and ``.parquet`` hold one row per campaign: ``id``, ``status``
(``ok`` or ``refused``), ``planned_spend``, ``expected_roi``, ``seconds``, ``error`` (the
one-line message of a refused campaign) and ``reused`` (outputs found complete from an
earlier run and kept).

A bad campaign (a missing history, a negative budget, an unreachable ROI target) is
refused on its row; the others complete. A rerun keeps every campaign whose pair of
outputs is complete (both files, one run id) and plans the rest, so a killed batch resumes
with nothing lost or done twice. ``--workers N`` plans on N local processes; the results
do not depend on N (each campaign is planned alone, deterministically).
"""

from __future__ import annotations

import math
import os
import re
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.errors import InputError

#: A campaign id: it names the campaign's output files.
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
#: Keys a [[campaign]] table may hold (``policy`` and ``model`` are reserved).
CAMPAIGN_KEYS = ("id", "history", "budget", "roi_target", "date", "budget_risk")
REQUIRED_KEYS = ("id", "history", "budget", "roi_target", "date")
#: Largest batch file read (bytes): about 100,000 campaigns.
MAX_BATCH_BYTES = 64 * 1024**2
REPORT_COLUMNS = ("id", "status", "planned_spend", "expected_roi", "seconds", "error", "reused")
REPORT_NAME = "batch_report"


class BatchError(InputError):
    """A batch file that cannot be read as a whole (the message names the fix)."""


@dataclass(frozen=True)
class Campaign:
    """One campaign of a batch, as written (checked when it is planned)."""

    id: str
    history: Path
    budget: Any
    roi_target: Any
    date: Any
    budget_risk: Any = None


def read_batch(path: str | os.PathLike[str]) -> list[Campaign]:
    """The campaigns of a batch file.

    Raises:
        BatchError: not UTF-8 TOML, no ``[[campaign]]`` table, an unknown key, a missing
            or malformed id, or two campaigns with one id. A campaign's other values are
            checked when it is planned, so that one bad campaign does not stop the rest.
    """
    from envs.io import read_input_bytes

    path = Path(path)
    data = read_input_bytes(path, "batch file", MAX_BATCH_BYTES, BatchError)
    try:
        parsed = tomllib.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise BatchError(f"{path}: not a TOML batch file ({err}); see docs/scale.md") from None
    tables = parsed.get("campaign")
    extra = sorted(set(parsed) - {"campaign"})
    if extra:
        raise BatchError(
            f"{path}: unknown top-level key {extra[0]!r}; a batch file holds only "
            "[[campaign]] tables"
        )
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise BatchError(
            f"{path}: no [[campaign]] tables; write one per campaign with id, history, "
            "budget, roi_target and date"
        )
    campaigns, seen = [], set()
    for number, table in enumerate(tables, start=1):
        where = f"{path}: campaign {number}"
        unknown = sorted(set(table) - set(CAMPAIGN_KEYS))
        if unknown:
            hint = (
                " (policy and model are not supported in batches yet)"
                if set(unknown)
                & {
                    "policy",
                    "model",
                }
                else ""
            )
            raise BatchError(
                f"{where}: unknown key {unknown[0]!r}{hint}; use {', '.join(CAMPAIGN_KEYS)}"
            )
        missing = [key for key in REQUIRED_KEYS if key not in table]
        if missing:
            raise BatchError(f"{where}: {missing[0]} is missing; give {', '.join(REQUIRED_KEYS)}")
        ident = table["id"]
        if not isinstance(ident, str) or not CAMPAIGN_ID.fullmatch(ident):
            raise BatchError(
                f"{where}: id {ident!r} must be 1-100 letters, digits, '-', '_' or '.', "
                "starting with a letter or digit (it names the output files)"
            )
        if ident.lower() in seen or ident.lower() == REPORT_NAME:
            raise BatchError(
                f"{where}: id {ident!r} is used twice (or names the report); give every campaign its own id"
            )
        seen.add(ident.lower())
        if not isinstance(table["history"], str):
            raise BatchError(f"{where}: history must be a path string")
        campaigns.append(
            Campaign(
                id=ident,
                history=path.parent / table["history"],
                budget=table["budget"],
                roi_target=table["roi_target"],
                date=table["date"],
                budget_risk=table.get("budget_risk"),
            )
        )
    return campaigns


def complete_outputs(out_dir: Path, ident: str) -> dict[str, Any] | None:
    """The summary of a campaign whose pair of outputs is complete (both files, one run
    id), else None."""
    import json

    table, summary = out_dir / f"{ident}.csv", out_dir / f"{ident}.json"
    if not (table.is_file() and summary.is_file()):
        return None
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
        with open(table, encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n").split(",")
            first = handle.readline().rstrip("\n").split(",")
        run_id = first[header.index("run_id")]
    except (OSError, ValueError, IndexError):
        return None
    if not isinstance(data, dict) or data.get("run_id") != run_id:
        return None
    return data


def plan_campaign(campaign: Campaign, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Plan one campaign as ``autopilot recommend`` does and write its pair of outputs.

    Never raises for a user error: a refused campaign is a row with its one-line message.
    """
    from bidder.logs import read_logs
    from bidder.recommend import check_budget_risk, check_settings, recommend
    from envs.io import check_outputs_distinct
    from policies.cli import amount_arg, number_or_text, ratio_arg
    from policies.cli.recommend import _parse_date, write_recommendation

    out_dir = Path(out_dir)
    start = time.perf_counter()
    row: dict[str, Any] = {"id": campaign.id, "reused": False}
    try:
        budget = number_or_text(campaign.budget, amount_arg, "budget")
        roi_target = number_or_text(campaign.roi_target, ratio_arg, "roi_target")
        date = _parse_date(str(campaign.date))  # a TOML date literal, or text
        check_settings(budget, roi_target)
        check_budget_risk(campaign.budget_risk)
        table, summary = out_dir / f"{campaign.id}.csv", out_dir / f"{campaign.id}.json"
        check_outputs_distinct([campaign.history], [table, summary])
        logs = read_logs(campaign.history)
        recommendation = recommend(
            logs,
            budget,
            roi_target,
            date,
            source=str(campaign.history),
            budget_risk=campaign.budget_risk,
        )
        write_recommendation(recommendation, table, summary)
        s = recommendation.summary
        row |= {
            "status": "ok",
            "planned_spend": s["planned_spend"],
            "expected_roi": s["expected_roi"],
            "error": "",
        }
    except InputError as err:
        row |= {"status": "refused", "planned_spend": math.nan, "expected_roi": math.nan}
        row["error"] = " ".join(str(err).split())
    except OSError as err:
        row |= {"status": "refused", "planned_spend": math.nan, "expected_roi": math.nan}
        row["error"] = f"{err.filename or ''}: {err.strerror or err}".strip(": ")
    row["seconds"] = round(time.perf_counter() - start, 4)
    return row


def _plan_many(args: tuple[list[Campaign], str]) -> list[dict[str, Any]]:
    campaigns, out_dir = args
    return [plan_campaign(c, out_dir) for c in campaigns]


def run_batch(
    campaigns: list[Campaign],
    out_dir: str | os.PathLike[str],
    workers: int = 1,
    progress=None,
) -> list[dict[str, Any]]:
    """Plan every campaign not already complete in ``out_dir``; write the batch report.

    Returns:
        The report rows, in the batch file's order.
    """
    import pandas as pd

    from bidder.logs import table_writer
    from envs.io import OutputSet

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for campaign in campaigns:
        done = complete_outputs(out_dir, campaign.id)
        if done is None:
            todo.append(campaign)
        else:
            rows[campaign.id] = {
                "id": campaign.id,
                "status": "ok",
                "planned_spend": done.get("planned_spend"),
                "expected_roi": done.get("expected_roi"),
                "seconds": 0.0,
                "error": "",
                "reused": True,
            }
    if workers <= 1 or len(todo) <= 1:
        for campaign in todo:
            rows[campaign.id] = plan_campaign(campaign, out_dir)
            if progress is not None:
                progress(len(rows), len(campaigns))
    else:
        import multiprocessing

        # Chunks of a few campaigns: one process call each, so that the pool's overhead
        # stays small next to a 0.1-0.3 s plan.
        size = max(1, min(16, len(todo) // (4 * workers)))
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for result in pool.map(_plan_many, [(chunk, str(out_dir)) for chunk in chunks]):
                for row in result:
                    rows[row["id"]] = row
                if progress is not None:
                    progress(len(rows), len(campaigns))
    ordered = [rows[c.id] for c in campaigns]
    report = pd.DataFrame(ordered, columns=list(REPORT_COLUMNS))
    outputs = OutputSet()
    for suffix in (".csv", ".parquet"):
        path = out_dir / f"{REPORT_NAME}{suffix}"
        outputs.add(path, table_writer(report, path, "batch report"))
    outputs.commit()
    return ordered
