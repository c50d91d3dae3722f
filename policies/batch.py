"""Many nightly recommendations in one run: ``autopilot recommend --batch FILE --out-dir OUT``.

A batch file is TOML with one ``[[campaign]]`` table per campaign::

    [[campaign]]
    id = "shop-17"             # letters, digits, '-', '_', '.'; names the outputs
    history = "logs/shop-17.csv"   # relative to the batch file
    budget = 50000             # or "50k", "5w"
    roi_target = 4             # or "400%"
    date = "2026-01-19"
    budget_risk = 0.05         # optional, as --budget-risk
    policy = "ppo.safetensors" # optional, as --policy (relative to the batch file)

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
with nothing lost or done twice. ``--workers N`` plans on N local processes, or on Ray
with ``--backend ray`` (:mod:`policies.parallel`); the results do not depend on either
(each campaign is planned alone, deterministically).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.errors import InputError

#: A campaign id: it names the campaign's output files.
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
#: Keys a [[campaign]] table may hold.
CAMPAIGN_KEYS = (
    "id", "history", "budget", "roi_target", "date", "budget_risk", "policy", "model"
)  # fmt: skip
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
    policy: Path | None = None
    model: Any = None


def read_batch(path: str | os.PathLike[str]) -> list[Campaign]:
    """The campaigns of a batch file.

    Raises:
        BatchError: not UTF-8 TOML, no ``[[campaign]]`` table, an unknown key, a missing
            or malformed id, or two campaigns with one id. A campaign's other values are
            checked when it is planned, so that one bad campaign does not stop the rest.
    """
    from envs.io import check_keys, read_toml

    path = Path(path)
    parsed = read_toml(path, "batch file", MAX_BATCH_BYTES, BatchError, "; see docs/scale.md")
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
        check_keys(table, CAMPAIGN_KEYS, where, BatchError)
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
        for key in ("history", "policy"):
            if key in table and not isinstance(table[key], str):
                raise BatchError(f"{where}: {key} must be a path string")
        campaigns.append(
            Campaign(
                id=ident,
                history=path.parent / table["history"],
                budget=table["budget"],
                roi_target=table["roi_target"],
                date=table["date"],
                budget_risk=table.get("budget_risk"),
                policy=path.parent / table["policy"] if "policy" in table else None,
                model=table.get("model"),
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


@dataclass(frozen=True)
class CampaignTask:
    """What a worker needs to plan one campaign: its checked settings and the bytes of
    its history (so that a worker on another machine needs no shared disk)."""

    id: str
    history: bytes
    kind: str
    source: str
    budget: float
    roi_target: float
    date: dt.date
    budget_risk: float | None
    plan_note: str
    model: str


def _refused(ident: str, message: str, seconds: float) -> dict[str, Any]:
    return {
        "id": ident,
        "status": "refused",
        "planned_spend": math.nan,
        "expected_roi": math.nan,
        "seconds": round(seconds, 4),
        "error": " ".join(message.split()),
        "reused": False,
    }


def _os_message(err: OSError) -> str:
    return f"{err.filename or ''}: {err.strerror or err}".strip(": ")


class _PolicyChecks:
    """Each distinct policy file of a batch loaded once, as ``recommend --policy`` checks
    it; the answer is the plan note, or the error that refuses its campaigns."""

    def __init__(self) -> None:
        self._seen: dict[Path, str | InputError] = {}

    def note(self, path: Path) -> str:
        if path not in self._seen:
            from policies.cli.recommend import check_policy

            try:
                self._seen[path] = check_policy(path)
            except InputError as err:
                self._seen[path] = err
        answer = self._seen[path]
        if isinstance(answer, InputError):
            raise answer
        return answer


def prepare_campaign(
    campaign: Campaign, out_dir: Path, policies: _PolicyChecks | None = None
) -> CampaignTask:
    """Check a campaign's settings and read its history, as ``recommend`` does before it
    plans.

    Raises:
        InputError, OSError: the campaign is refused (the message says why).
    """
    from bidder.logs import read_log_bytes
    from bidder.recommend import (
        DEFAULT_MODEL,
        NEUTRAL_PLAN_NOTE,
        check_budget_risk,
        check_model,
        check_settings,
    )
    from envs.io import check_outputs_distinct
    from policies.cli import amount_arg, number_or_text, ratio_arg
    from policies.cli.recommend import _parse_date

    budget = number_or_text(campaign.budget, amount_arg, "budget")
    roi_target = number_or_text(campaign.roi_target, ratio_arg, "roi_target")
    date = _parse_date(str(campaign.date))  # a TOML date literal, or text
    check_settings(budget, roi_target)
    check_budget_risk(campaign.budget_risk)
    model = DEFAULT_MODEL if campaign.model is None else campaign.model
    check_model(model)
    table, summary = out_dir / f"{campaign.id}.csv", out_dir / f"{campaign.id}.json"
    check_outputs_distinct([campaign.history, campaign.policy], [table, summary])
    plan_note = NEUTRAL_PLAN_NOTE
    if campaign.policy is not None:
        plan_note = (policies or _PolicyChecks()).note(campaign.policy)
    data, kind = read_log_bytes(campaign.history)
    return CampaignTask(
        id=campaign.id,
        history=data,
        kind=kind,
        source=str(campaign.history),
        budget=float(budget),
        roi_target=float(roi_target),
        date=date,
        budget_risk=campaign.budget_risk,
        plan_note=plan_note,
        model=model,
    )


def plan_task(task: CampaignTask) -> dict[str, Any]:
    """Plan one prepared campaign exactly as ``autopilot recommend`` plans it.

    Runs in a worker: it writes nothing and never raises for a user error. Returns the
    report row and, for a planned campaign, under ``"files"`` the texts of its CSV table
    and JSON summary (one run id in both).
    """
    from bidder.logs import parse_logs
    from bidder.recommend import recommend
    from envs.io import new_run_id
    from policies.cli.recommend import recommendation_frame, summary_text

    started = time.perf_counter()
    try:
        logs = parse_logs(task.history, task.kind, task.source)
        recommendation = recommend(
            logs,
            task.budget,
            task.roi_target,
            task.date,
            source=task.source,
            budget_risk=task.budget_risk,
            plan_note=task.plan_note,
            model=task.model,
        )
    except InputError as err:
        return _refused(task.id, str(err), time.perf_counter() - started)
    run_id = new_run_id()
    table = recommendation_frame(recommendation, run_id).to_csv(index=False)
    summary = summary_text(recommendation, run_id)
    s = recommendation.summary
    return {
        "id": task.id,
        "status": "ok",
        "planned_spend": s["planned_spend"],
        "expected_roi": s["expected_roi"],
        "seconds": round(time.perf_counter() - started, 4),
        "error": "",
        "reused": False,
        "files": (table, summary),
    }


def write_outputs(out_dir: Path, row: dict[str, Any]) -> dict[str, Any]:
    """Write a planned campaign's pair of files atomically; return its report row (a
    campaign whose files cannot be written becomes refused)."""
    from envs.io import OutputSet

    files = row.pop("files", None)
    if files is None:
        return row
    outputs = OutputSet()
    outputs.add_text(out_dir / f"{row['id']}.csv", files[0])
    outputs.add_text(out_dir / f"{row['id']}.json", files[1])
    try:
        outputs.commit()
    except InputError as err:
        return _refused(row["id"], str(err), row["seconds"])
    return row


def run_batch(
    campaigns: list[Campaign],
    out_dir: str | os.PathLike[str],
    workers: int = 1,
    progress=None,
    backend: str = "local",
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Plan every campaign not already complete in ``out_dir``; write the batch report.

    The driver (this process) checks each campaign and reads its history; the workers
    (``backend`` and ``workers``: :func:`policies.parallel.run_tasks`) plan; the driver
    writes each campaign's pair of files as soon as it arrives, so a killed batch keeps
    every finished campaign. ``progress(done, total)`` is called after each campaign.

    Returns:
        The report rows, in the batch file's order.
    """
    import pandas as pd

    from bidder.logs import table_writer
    from envs.io import OutputSet
    from policies.parallel import chunk_size, run_tasks

    out_dir = Path(out_dir)  # created with the first file written
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
    policies = _PolicyChecks()

    def record(row: dict[str, Any]) -> None:
        rows[row["id"]] = row
        if progress is not None:
            progress(len(rows), len(campaigns))

    def tasks():
        for campaign in todo:
            started = time.perf_counter()
            try:
                yield prepare_campaign(campaign, out_dir, policies)
            except InputError as err:
                record(_refused(campaign.id, str(err), time.perf_counter() - started))
            except OSError as err:
                record(_refused(campaign.id, _os_message(err), time.perf_counter() - started))

    size = chunk_size(len(todo), workers)
    for _, row in run_tasks(
        plan_task, tasks(), backend=backend, workers=workers, address=address, chunk=size
    ):
        record(write_outputs(out_dir, row))
    ordered = [rows[c.id] for c in campaigns]
    report = pd.DataFrame(ordered, columns=list(REPORT_COLUMNS))
    outputs = OutputSet()
    for suffix in (".csv", ".parquet"):
        path = out_dir / f"{REPORT_NAME}{suffix}"
        outputs.add(path, table_writer(report, path, "batch report"))
    outputs.commit()
    return ordered
