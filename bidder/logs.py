"""Hourly performance logs: read, validate strictly, write atomically.

The format is written down in ``docs/logs.md``: one row per hour, product and channel.
Every consumer of real data (``autopilot recommend``, ``autopilot diagnose``) goes through
:func:`read_logs`, so bad input is caught here once, with a message that names the file,
the row (or CSV line), the column and the fix. Nothing downstream has to guard against
NaN, negative counts or duplicate hours again.

Public functions: :func:`read_logs`, :func:`validate_logs`, :func:`write_logs` and
:func:`episode_to_logs` (simulated episodes to log rows).
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from envs.errors import InputError
from envs.io import atomic_write, read_input_bytes
from envs.scenario import KNOWN_CHANNELS, MAX_COMMISSION_RATE, Arm

#: Arm keys: at most one row per date, hour, product and channel.
KEY_COLUMNS: tuple[str, ...] = ("date", "hour", "product", "channel")
#: Whole, non-negative counts.
COUNT_COLUMNS: tuple[str, ...] = ("impressions", "clicks", "orders")
#: Non-negative amounts: spend and gmv in currency, bid in CPM (currency per 1000 impressions).
AMOUNT_COLUMNS: tuple[str, ...] = ("spend", "gmv", "bid")
#: Columns every log needs besides the time (``date`` and ``hour``, or ``timestamp``).
REQUIRED_COLUMNS: tuple[str, ...] = ("product", "channel", *COUNT_COLUMNS, *AMOUNT_COLUMNS)
#: Optional measured figures: share of auctions won (0-1), mean clearing price paid (CPM).
OPTIONAL_NUMERIC_COLUMNS: tuple[str, ...] = ("win_rate", "clearing_cpm", "commission_rate")
#: Optional labels; they may be blank in some rows.
OPTIONAL_TEXT_COLUMNS: tuple[str, ...] = ("creative_id", "creative_type")
#: Every documented column, in the order files are written.
LOG_COLUMNS: tuple[str, ...] = (
    *KEY_COLUMNS,
    *COUNT_COLUMNS,
    *AMOUNT_COLUMNS,
    *OPTIONAL_NUMERIC_COLUMNS,
    *OPTIONAL_TEXT_COLUMNS,
)
#: The largest count (impressions, clicks, orders) and amount (spend, gmv, bid) a row may
#: hold: far above any real hour, and exact in float64 and int64 alike.
MAX_COUNT = 10**15
MAX_AMOUNT = 1e15
#: The largest log file read (bytes): about 10 million rows of CSV.
MAX_LOG_BYTES = 2 * 1024**3
#: Dates a log may hold: the span of pandas' nanosecond timestamps, a day inside each end.
MIN_LOG_DATE = dt.date(1678, 1, 1)
MAX_LOG_DATE = dt.date(2262, 4, 10)
#: File suffixes and their formats.
FORMATS: dict[str, str] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

_KNOWN_NAMES: tuple[str, ...] = (*LOG_COLUMNS, "timestamp")


class LogError(InputError):
    """A performance log that cannot be used; the message names the row, column and fix."""


RowLabel = Callable[[int], str]


def _data_row(position: int) -> str:
    return f"row {position + 1}"


def _csv_line(position: int) -> str:
    # Line 1 is the header, so the first data row is line 2.
    return f"line {position + 2}"


def table_format(path: str | os.PathLike[str], what: str = "file") -> str:
    """``"csv"`` or ``"parquet"`` from the file's suffix.

    Raises:
        LogError: any other suffix; the message calls the file ``what``.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise LogError(
            f"{path}: unknown {what} type {suffix or '(no suffix)'!r}; use a .csv or .parquet file"
        )
    return FORMATS[suffix]


def log_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"`` for a log file (see :func:`table_format`)."""
    return table_format(path, "log file")


def table_writer(
    df: pd.DataFrame, path: str | os.PathLike[str], what: str = "file"
) -> Callable[[Path], None]:
    """A function writing ``df`` to a given file as CSV or Parquet by ``path``'s suffix, for
    :func:`envs.io.atomic_write` or :class:`envs.io.OutputSet`.

    Raises:
        LogError: an unknown suffix.
    """
    if table_format(path, what) == "csv":
        return lambda tmp: df.to_csv(tmp, index=False)
    return lambda tmp: df.to_parquet(tmp, index=False, engine="pyarrow")


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], what: str = "file") -> None:
    """Write ``df`` atomically as CSV or Parquet by the path's suffix (no index column).

    Raises:
        LogError: an unknown suffix (nothing is written).
    """
    atomic_write(Path(path), table_writer(df, path, what))


# -- reading ------------------------------------------------------------------------------
def read_logs(path: str | os.PathLike[str], channels: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet performance log and validate it (see :func:`validate_logs`).

    Args:
        path: a ``.csv`` or ``.parquet`` file in the format of ``docs/logs.md``.
        channels: channel names accepted besides the simulator's (``KNOWN_CHANNELS``):
            the ones a campaign declares (an ad account's own names).

    Returns:
        The clean log frame, sorted by date, hour, product and channel.

    Raises:
        LogError: the file is missing, unreadable, empty or breaks the format; the message
            names the CSV line (or Parquet row), the column and the fix.
    """
    data, kind = read_log_bytes(path)
    return parse_logs(data, kind, str(path), channels)


def read_log_bytes(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """A log file's bytes and its kind (``"csv"`` or ``"parquet"``), unparsed: what
    :func:`parse_logs` takes (a batch's driver reads, its workers parse).

    Raises:
        LogError: an unknown suffix; the file is missing, not a regular file or too large.
    """
    kind = log_format(path)
    return read_input_bytes(path, "log file", MAX_LOG_BYTES, LogError), kind


def parse_logs(
    data: bytes, kind: str, source: str, channels: Iterable[str] | None = None
) -> pd.DataFrame:
    """:func:`read_logs` on a file's bytes: ``kind`` is ``"csv"`` or ``"parquet"``,
    ``source`` names the file in messages. Lets a worker that has the bytes but not the
    file (a Ray task) read logs exactly as :func:`read_logs` does."""
    import io

    try:
        if kind == "csv":
            # Text first: types are checked column by column below, so that a stray word
            # in a number column is reported with its line instead of silently parsed.
            raw = pd.read_csv(
                io.BytesIO(data), dtype=str, encoding="utf-8-sig", skipinitialspace=True
            )
        else:
            raw = pd.read_parquet(io.BytesIO(data))
    except pd.errors.EmptyDataError:
        raise LogError(
            f"{source}: the file is empty; export at least a header line and one row per hour"
        ) from None
    except (OSError, ValueError, ImportError, UnicodeError, MemoryError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LogError(
            f"{source}: cannot read the file as {kind.upper()} ({reason}); "
            f"check that it is a {kind.upper()} export of the log format in docs/logs.md"
        ) from None
    return _validate(raw, source, _csv_line if kind == "csv" else _data_row, channels)


# -- validation ---------------------------------------------------------------------------
def validate_logs(
    df: pd.DataFrame, source: str = "logs", channels: Iterable[str] | None = None
) -> pd.DataFrame:
    """Check a log frame strictly and return a clean copy.

    Args:
        df: rows in the format of ``docs/logs.md``; numbers may still be text (as read
            from a CSV). Rows are counted from 1 in messages.
        source: what to call the data in messages (usually the file name).
        channels: channel names accepted besides the simulator's (``KNOWN_CHANNELS``),
            e.g. the ones a :class:`~policies.autopilot.Campaign` declares; a name in
            neither is refused as a likely typo, with the closest one named.

    Returns:
        A new frame with columns ``timestamp`` (datetime64, start of the hour), ``date``
        (datetime64 at midnight), ``hour`` (int), ``product``, ``channel`` (str),
        ``impressions``, ``clicks``, ``orders`` (int64), ``spend``, ``gmv``, ``bid``
        (float64), then whichever optional columns were given (``win_rate``,
        ``clearing_cpm`` as float64; ``creative_id``, ``creative_type`` as str, blank
        where not given). Sorted by date, hour, product and channel; index 0..n-1.
        Columns outside the format are dropped.

    Raises:
        LogError: the first problem found, naming the row, the column and the fix.
    """
    return _validate(df, source, _data_row, channels)


def _validate(
    raw: pd.DataFrame, source: str, row_label: RowLabel, channels: Iterable[str] | None = None
) -> pd.DataFrame:
    if not isinstance(raw, pd.DataFrame):
        raise LogError(f"{source}: expected a table of log rows, got {type(raw).__name__}")
    raw = raw.rename(columns=lambda name: str(name).strip())
    if len(raw.columns) == 0 or len(raw) == 0:
        raise LogError(
            f"{source}: the log has no rows; export at least one row per hour, product and "
            "channel (docs/logs.md)"
        )
    _check_columns(raw, source)
    checker = _ColumnChecker(raw, source, row_label, channels)

    clean = pd.DataFrame(index=raw.index)
    clean["date"], clean["hour"] = checker.time()
    clean["product"] = checker.text("product", allow_blank=False)
    clean["channel"] = checker.channel()
    for name in COUNT_COLUMNS:
        clean[name] = checker.number(
            name, whole=True, high=MAX_COUNT, high_fix="no hour has that many; fix the export"
        ).astype(np.int64)
    for name in AMOUNT_COLUMNS:
        clean[name] = checker.number(
            name, high=MAX_AMOUNT, high_fix="no hour has that much; fix the export"
        )
    if "win_rate" in raw.columns:
        clean["win_rate"] = checker.number("win_rate", high=1.0)
    if "clearing_cpm" in raw.columns:
        clean["clearing_cpm"] = checker.number("clearing_cpm")
    if "commission_rate" in raw.columns:
        clean["commission_rate"] = checker.optional_number(
            "commission_rate",
            high=MAX_COMMISSION_RATE,
            high_fix=f"a commission rate is a share of GMV, at most {MAX_COMMISSION_RATE} "
            "(0.2, not 20%)",
        )
    for name in OPTIONAL_TEXT_COLUMNS:
        if name in raw.columns:
            clean[name] = checker.text(name, allow_blank=True)

    checker.not_above(
        clean,
        "clicks",
        "impressions",
        "a click needs an impression; check that the columns are not swapped",
    )
    checker.orders_not_above_clicks(clean)
    checker.unique_keys(clean)

    clean.insert(0, "timestamp", clean["date"] + pd.to_timedelta(clean["hour"], unit="h"))
    return clean.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)


def _check_columns(raw: pd.DataFrame, source: str) -> None:
    present = set(raw.columns)
    unknown = [name for name in raw.columns if name not in _KNOWN_NAMES]
    missing = [name for name in REQUIRED_COLUMNS if name not in present]
    if not ({"date", "hour"} <= present or "timestamp" in present):
        missing = [name for name in ("date", "hour") if name not in present] + missing
    # An unknown column close to a documented one is almost surely a misspelling of it,
    # even when the documented one is optional: say so rather than drop its data.
    for name in [*missing, *(n for n in _KNOWN_NAMES if n not in present and n not in missing)]:
        close = _close_name(name, unknown)
        if close is not None:
            raise LogError(
                f"{source}: column {close!r} is not in the log format; rename it to {name!r} "
                "(column names are exact, see docs/logs.md)"
            )
    if missing:
        alternatives = " (or one 'timestamp' column)" if missing[0] in ("date", "hour") else ""
        raise LogError(
            f"{source}: missing column {missing[0]!r}{alternatives}; add it "
            f"(required: date, hour, {', '.join(REQUIRED_COLUMNS)}; see docs/logs.md)"
        )


def _close_name(name: str, candidates: Sequence[str]) -> str | None:
    lowered = {
        candidate.lower().replace(" ", "_").replace("-", "_"): candidate for candidate in candidates
    }
    if name in lowered:
        return lowered[name]
    match = difflib.get_close_matches(name, list(lowered), n=1, cutoff=0.75)
    return lowered[match[0]] if match else None


class _ColumnChecker:
    """Converts one column at a time, raising on the first bad row with its label."""

    def __init__(
        self,
        raw: pd.DataFrame,
        source: str,
        row_label: RowLabel,
        channels: Iterable[str] | None = None,
    ):
        self.raw = raw
        self.source = source
        self.row_label = row_label
        extra = [str(name) for name in channels or () if str(name) not in KNOWN_CHANNELS]
        self.channels = tuple(KNOWN_CHANNELS) + tuple(dict.fromkeys(extra))

    def fail(self, bad: np.ndarray, column: str, problem: Callable[[Any], str], fix: str) -> None:
        """Raise for the first row where ``bad`` holds; ``problem(value)`` says what is wrong."""
        positions = np.flatnonzero(bad)
        if positions.size == 0:
            return
        first = int(positions[0])
        value = self.raw[column].iloc[first] if column in self.raw.columns else None
        more = f" (and {positions.size - 1} more rows)" if positions.size > 1 else ""
        raise LogError(
            f"{self.source}: {self.row_label(first)}{more}, column {column!r}: "
            f"{problem(value)}; {fix}"
        )

    def missing(self, column: str) -> np.ndarray:
        values = self.raw[column]
        blank = values.isna().to_numpy().copy()
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            text = values.astype(str).str.strip()
            blank |= (text == "").to_numpy() & ~values.isna().to_numpy()
        return blank

    def number(
        self,
        column: str,
        *,
        whole: bool = False,
        high: float = np.inf,
        high_fix: str = "give a share between 0 and 1 (0.35, not 35%)",
    ) -> pd.Series:
        values = self.raw[column]
        fast = _plain_floats(values)
        if fast is not None:
            return self._checked(pd.Series(fast, index=values.index), column, whole, high, high_fix)
        self.fail(
            self.missing(column),
            column,
            lambda v: "missing value (blank or NaN)",
            "fill in every row; write 0 for an hour with no activity",
        )
        if pd.api.types.is_bool_dtype(values):
            self.fail(
                np.ones(len(values), bool),
                column,
                lambda v: f"true/false value {v!r} where a number belongs",
                "write plain numbers",
            )
        if pd.api.types.is_numeric_dtype(values):
            numbers = values.astype(np.float64)
        else:
            text = values.astype(str).str.strip()
            numbers = pd.to_numeric(text, errors="coerce").astype(np.float64)
            self.fail(
                numbers.isna().to_numpy(),
                column,
                lambda v: f"{v!r} is not a number",
                "write plain numbers such as 1250 or 33.5, without units or thousands separators",
            )
        return self._checked(numbers, column, whole, high, high_fix)

    def optional_number(self, column: str, *, high: float, high_fix: str) -> pd.Series:
        """Like :meth:`number`, with blank cells allowed (NaN in the result)."""
        blank = self.missing(column)
        if not blank.any():
            return self.number(column, high=high, high_fix=high_fix)
        original = self.raw
        self.raw = original.assign(**{column: original[column].mask(blank, 0)})
        try:
            numbers = self.number(column, high=high, high_fix=high_fix)
        finally:
            self.raw = original
        return numbers.mask(blank)

    def _checked(
        self, numbers: pd.Series, column: str, whole: bool, high: float, high_fix: str
    ) -> pd.Series:
        array = numbers.to_numpy()
        self.fail(
            ~np.isfinite(array),
            column,
            lambda v: f"{v!r} is not a finite number",
            "write a finite number",
        )
        self.fail(
            array < 0,
            column,
            lambda v: f"negative value {v!r}",
            "counts and amounts are never negative; fix the export or drop the row",
        )
        if whole:
            self.fail(
                array != np.round(array),
                column,
                lambda v: f"{v!r} is not a whole number",
                "counts are whole numbers; do not average or scale them",
            )
        if np.isfinite(high):
            self.fail(array > high, column, lambda v: f"{v!r} is above {high:g}", high_fix)
        return numbers

    def text(self, column: str, *, allow_blank: bool) -> pd.Series:
        values = self.raw[column]
        blank = self.missing(column)
        if not allow_blank:
            self.fail(blank, column, lambda v: "missing value", f"give every row its {column} name")
        text = values.astype(str).str.strip()
        return text.where(~blank, "").astype(object)

    def channel(self) -> pd.Series:
        channel = self.text("channel", allow_blank=False)
        unknown = ~channel.isin(self.channels).to_numpy()

        def problem(value: Any) -> str:
            close = _close_name(str(value).strip().lower(), self.channels)
            hint = f" (did you mean {close!r}?)" if close else ""
            return f"unknown channel {value!r}{hint}"

        self.fail(unknown, "channel", problem, f"use one of {', '.join(self.channels)}")
        return channel

    def time(self) -> tuple[pd.Series, pd.Series]:
        """``date`` (midnight) and ``hour`` from date and hour, or from timestamp."""
        if {"date", "hour"} <= set(self.raw.columns):
            date = self._date()
            hour = self.number(
                "hour", whole=True, high=23.0, high_fix="hours of the day run from 0 to 23"
            )
            return date, hour.astype(np.int64)
        stamp = self._timestamp()
        return stamp.dt.normalize(), stamp.dt.hour.astype(np.int64)

    def _date(self) -> pd.Series:
        values = self.raw["date"]
        self.fail(
            self.missing("date"),
            "date",
            lambda v: "missing date",
            "give every row its date as YYYY-MM-DD",
        )
        if pd.api.types.is_datetime64_any_dtype(values):
            dates = values.dt.tz_localize(None) if values.dt.tz is not None else values
            self.fail(
                (dates != dates.dt.normalize()).to_numpy(),
                "date",
                lambda v: f"{v!r} has a time of day",
                "put the hour in the 'hour' column and the bare date here",
            )
            return dates.astype("datetime64[ns]")
        # Each distinct value is read once: a log holds a few dates on many rows.
        codes, distinct = pd.factorize(values)
        text = pd.Series(
            [v.isoformat() if isinstance(v, dt.date) else str(v).strip() for v in distinct],
            dtype=object,
        )
        dates = pd.Series(_parse_each(text, "%Y-%m-%d").to_numpy()[codes], index=values.index)
        self.fail(
            dates.isna().to_numpy(),
            "date",
            lambda v: f"{v!r} is not a date between {MIN_LOG_DATE} and {MAX_LOG_DATE}",
            "write dates as YYYY-MM-DD, e.g. 2026-01-05",
        )
        return pd.to_datetime(dates).astype("datetime64[ns]")

    def _timestamp(self) -> pd.Series:
        values = self.raw["timestamp"]
        self.fail(
            self.missing("timestamp"),
            "timestamp",
            lambda v: "missing timestamp",
            "give every row the start of its hour, e.g. 2026-01-05 13:00",
        )
        if pd.api.types.is_datetime64_any_dtype(values):
            stamps = values
        else:
            text = values.map(lambda v: v.isoformat() if isinstance(v, dt.date) else str(v).strip())
            parsed = _parse_each(text, "ISO8601")
            self.fail(
                parsed.isna().to_numpy(),
                "timestamp",
                lambda v: f"{v!r} is not a timestamp between {MIN_LOG_DATE} and {MAX_LOG_DATE}",
                "write the start of the hour as YYYY-MM-DD HH:00",
            )
            offsets = parsed.map(lambda stamp: str(stamp.utcoffset()))
            self.fail(
                (offsets != offsets.iloc[0]).to_numpy(),
                "timestamp",
                lambda v: f"{v!r} has another UTC offset than the first row ({text.iloc[0]!r})",
                "export every row in one time zone (or every row without an offset)",
            )
            stamps = pd.to_datetime(list(parsed), utc=False)
            stamps = pd.Series(stamps, index=values.index)
        if stamps.dt.tz is not None:
            # Local wall-clock hours are what dayparts follow; drop the zone, keep the clock.
            stamps = stamps.dt.tz_localize(None)
        self.fail(
            (stamps != stamps.dt.floor("h")).to_numpy(),
            "timestamp",
            lambda v: f"{v!r} is not the start of an hour",
            "one row covers one whole hour; write its start, e.g. 2026-01-05 13:00",
        )
        return stamps.astype("datetime64[ns]")

    def not_above(self, clean: pd.DataFrame, column: str, limit: str, fix: str) -> None:
        over = (clean[column] > clean[limit]).to_numpy()
        positions = np.flatnonzero(over)
        if positions.size:
            first = int(positions[0])
            self.fail(
                over,
                column,
                lambda v: (
                    f"{clean[column].iloc[first]} {column} exceed "
                    f"{clean[limit].iloc[first]} {limit}"
                ),
                fix,
            )

    def orders_not_above_clicks(self, clean: pd.DataFrame) -> None:
        """Orders arrive hours after their clicks, so one hour may report more orders than
        clicks; over the whole history an arm's orders cannot outnumber its clicks."""
        keys = ["product", "channel"]
        totals = clean.groupby(keys, sort=False)[["orders", "clicks"]].sum()
        over = totals[totals["orders"] > totals["clicks"]]
        if over.empty:
            return
        product, channel = over.index[0]
        in_arm = ((clean["product"] == product) & (clean["channel"] == channel)).to_numpy()
        first = int(np.flatnonzero(in_arm)[0])
        more = f" (and {len(over) - 1} more arms)" if len(over) > 1 else ""
        raise LogError(
            f"{self.source}: column 'orders': {product} in {channel} (from "
            f"{self.row_label(first)}){more} has {int(over['orders'].iloc[0]):,} orders "
            f"exceed its {int(over['clicks'].iloc[0]):,} clicks over the history; every order "
            "follows a click, so check that the columns are not swapped"
        )

    def unique_keys(self, clean: pd.DataFrame) -> None:
        repeated = clean.duplicated(list(KEY_COLUMNS), keep=False).to_numpy()
        positions = np.flatnonzero(repeated)
        if positions.size == 0:
            return
        first = int(positions[0])
        key = clean.iloc[first]
        same = (clean[list(KEY_COLUMNS)] == key[list(KEY_COLUMNS)]).all(axis=1).to_numpy()
        second = int(np.flatnonzero(same)[1])
        raise LogError(
            f"{self.source}: {self.row_label(first)} and {self.row_label(second)} are "
            f"duplicate rows for {key['date']:%Y-%m-%d} hour {key['hour']}, "
            f"{key['product']} in {key['channel']}; keep one row per date, hour, product "
            "and channel (add up split rows)"
        )


def _plain_floats(values: pd.Series) -> np.ndarray | None:
    """Text of plain finite numbers (spaces around allowed) as float64, parsed in one
    vectorised cast; None when any value is blank, not text or not such a number, so
    that the row-by-row path reads the column and names the bad row."""
    if not pd.api.types.is_string_dtype(values) or len(values) == 0:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pa.array(values, type=pa.string())
        if text.null_count:
            return None
        floats = pc.cast(pc.utf8_trim_whitespace(text), pa.float64())
    except (pa.ArrowException, TypeError, ValueError):
        return None
    array = floats.to_numpy(zero_copy_only=False)
    return array if np.isfinite(array).all() else None


def _parse_each(text: pd.Series, fmt: str) -> pd.Series:
    """Parse every distinct text once; NaT where it is not a time pandas can hold."""
    parsed: dict[str, Any] = {}
    for value in pd.unique(text):
        try:
            stamp = pd.to_datetime(value, format=fmt)
        except (ValueError, OverflowError, TypeError):  # OutOfBoundsDatetime is a ValueError
            stamp = pd.NaT
        if stamp is not pd.NaT and not (MIN_LOG_DATE <= stamp.date() <= MAX_LOG_DATE):
            stamp = pd.NaT
        parsed[value] = stamp
    return text.map(parsed)


# -- writing ------------------------------------------------------------------------------
def to_export_frame(logs: pd.DataFrame) -> pd.DataFrame:
    """The documented columns of a clean log frame, dates as ``YYYY-MM-DD`` text."""
    out = logs[[name for name in LOG_COLUMNS if name in logs.columns]].copy()
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    return out


def write_logs(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Validate ``df`` and write it atomically as CSV or Parquet (by the path's suffix).

    A reader never sees a half-written file; if anything fails, an existing file at
    ``path`` is left untouched.

    Raises:
        LogError: an unknown suffix, or rows that break the format.
    """
    log_format(path)  # refuse a bad suffix before validating the rows
    export = to_export_frame(validate_logs(df, source=f"rows for {path}"))
    write_table(export, path, "log file")


# -- simulated episodes -------------------------------------------------------------------
def episode_to_logs(
    trace: Mapping[str, np.ndarray],
    hour_of_day: np.ndarray,
    arms: Sequence[Arm],
    date: dt.date,
    commission: Sequence[bool] | None = None,
) -> pd.DataFrame:
    """Log rows of one simulated day.

    Args:
        trace: per-arm hourly figures, arrays of shape (hours, arms) with keys
            ``bid_cpm``, ``impressions``, ``clicks``, ``orders``, ``spend``, ``gmv``,
            ``win_rate`` and ``clearing_cpm`` (as ``policies.evaluate.run_episode``
            records them).
        hour_of_day: hour of day of each traced hour.
        arms: the scenario's arms, in the trace's column order.
        date: the day's date.
        commission: per arm, whether it is paid by commission (its rate is then in the
            trace's ``commission_rate`` and goes to the column of that name).

    Returns:
        One row per traced hour and arm in the documented columns (date as text), spend
        rounded down and GMV to the nearest cent, as a platform reports them.
    """
    hours, n_arms = np.asarray(trace["spend"]).shape
    if n_arms != len(arms):
        raise ValueError(f"trace has {n_arms} arms but {len(arms)} arms were given")

    def per_row(name: str) -> np.ndarray:
        return np.asarray(trace[name]).reshape(-1)

    if commission is not None and any(commission):
        rate = per_row("commission_rate")
        commission = np.tile(np.asarray(commission, dtype=bool), hours)
    else:
        commission = None
    frame = pd.DataFrame(
        {
            "date": date.isoformat(),
            "hour": np.repeat(np.asarray(hour_of_day, dtype=np.int64), n_arms),
            "product": np.tile([arm.product for arm in arms], hours),
            "channel": np.tile([arm.channel for arm in arms], hours),
            "impressions": per_row("impressions").astype(np.int64),
            "clicks": per_row("clicks").astype(np.int64),
            "orders": per_row("orders").astype(np.int64),
            # Down to the cent, so that a day's logged spend never exceeds what was spent
            # (and so never the budget), as rounding to the nearest cent could.
            "spend": np.floor(per_row("spend") * 100.0) / 100.0,
            "gmv": np.round(per_row("gmv"), 2),
            "bid": np.round(per_row("bid_cpm"), 4),
            "win_rate": np.round(per_row("win_rate"), 6),
            "clearing_cpm": np.round(per_row("clearing_cpm"), 4),
            "creative_type": np.tile([arm.creative for arm in arms], hours),
        }
    )
    if commission is not None:
        # Commission arms take part in no auction: no bid and no clearing price; their
        # rate, the share of their traffic the influencers brought as win_rate, and the
        # commission paid as spend.
        frame["commission_rate"] = np.where(commission, np.round(rate, 6), np.nan)
        frame.loc[commission, "bid"] = 0.0
        frame.loc[commission, "clearing_cpm"] = 0.0
        frame = frame[[c for c in LOG_COLUMNS if c in frame.columns]]
    return frame


__all__ = [
    "COUNT_COLUMNS",
    "KEY_COLUMNS",
    "LOG_COLUMNS",
    "LogError",
    "MAX_LOG_DATE",
    "MIN_LOG_DATE",
    "REQUIRED_COLUMNS",
    "episode_to_logs",
    "log_format",
    "read_logs",
    "to_export_frame",
    "validate_logs",
    "write_logs",
]
