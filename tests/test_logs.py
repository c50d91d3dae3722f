"""The hourly log format: strict validation with typed errors, atomic writes, round trips.

Every bad-input case is checked twice: through ``read_logs`` (a ``LogError`` whose message
names the row/line, the column and the fix) and through the real CLI (exit code 2, one
line on stderr, no report file created, an existing one left byte for byte).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from bidder.logs import LOG_COLUMNS, LogError, read_logs, validate_logs, write_logs
from envs.errors import InputError
from policies.cli import main
from policies.simulate import simulate_logs


@pytest.fixture(scope="module")
def good_logs() -> pd.DataFrame:
    """Four simulated days of the steady preset, as documented columns (dates as text)."""
    logs = simulate_logs("steady", "even", days=4, seed=3)
    out = logs[[c for c in LOG_COLUMNS if c in logs.columns]].copy()
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    return out


def _set(column: str, position: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df = df.astype({column: object})
        df.loc[df.index[position], column] = value
        return df

    return edit


def _duplicate(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.iloc[[5]]], ignore_index=True)


def _clicks_above_impressions(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[df.index[7], "clicks"] = df.loc[df.index[7], "impressions"] + 1
    return df


def _orders_above_clicks(df: pd.DataFrame) -> pd.DataFrame:
    """Orders and clicks swapped: an arm's orders outnumber its clicks over the history
    (one hour alone may, when orders arrive hours after their clicks)."""
    df = df.copy()
    df["orders"], df["clicks"] = df["clicks"].copy(), df["orders"].copy()
    return df


#: name -> (edit of a good frame, fragments the message must contain). Row 3 of the frame
#: is CSV line 5 (line 1 is the header).
BAD_CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], tuple[str, ...]]] = {
    "missing column": (lambda df: df.drop(columns=["orders"]), ("missing column 'orders'",)),
    "missing time": (lambda df: df.drop(columns=["date"]), ("missing column 'date'", "timestamp")),
    "misspelt column": (
        lambda df: df.rename(columns={"clicks": "clikcs"}),
        ("'clikcs'", "rename it to 'clicks'"),
    ),
    "misspelt case": (
        lambda df: df.rename(columns={"spend": "Spend"}),
        ("'Spend'", "rename it to 'spend'"),
    ),
    "misspelt optional": (
        lambda df: df.rename(columns={"win_rate": "winrate"}),
        ("'winrate'", "rename it to 'win_rate'"),
    ),
    "word in a number": (
        _set("impressions", 3, "lots"),
        ("line 5", "'impressions'", "not a number"),
    ),
    "thousands separator": (_set("spend", 3, "1,250.00"), ("line 5", "'spend'", "separators")),
    "fractional count": (_set("clicks", 3, 12.5), ("line 5", "'clicks'", "whole number")),
    "negative spend": (_set("spend", 3, -5.0), ("line 5", "'spend'", "negative")),
    "negative count": (_set("orders", 3, -1), ("line 5", "'orders'", "negative")),
    "NaN gmv": (_set("gmv", 3, float("nan")), ("line 5", "'gmv'", "missing value")),
    "NaN text": (_set("bid", 3, "NaN"), ("line 5", "'bid'", "missing value")),
    "infinite bid": (_set("bid", 3, "inf"), ("line 5", "'bid'", "finite")),
    "clicks above impressions": (
        _clicks_above_impressions,
        ("line 9", "'clicks'", "exceed", "impressions"),
    ),
    "orders above clicks": (_orders_above_clicks, ("line 2", "'orders'", "exceed", "clicks")),
    "duplicate row": (_duplicate, ("line 7", "duplicate rows", "one row per date, hour")),
    "unknown channel": (
        _set("channel", 3, "tv"),
        ("line 5", "'channel'", "unknown channel 'tv'", "feed, live"),
    ),
    "channel spelling": (_set("channel", 3, "Feed"), ("line 5", "did you mean 'feed'")),
    "missing product": (_set("product", 3, ""), ("line 5", "'product'", "missing value")),
    "bad date": (_set("date", 3, "05/01/2026"), ("line 5", "'date'", "YYYY-MM-DD")),
    "hour 24": (_set("hour", 3, 24), ("line 5", "'hour'", "0 to 23")),
    "win rate in percent": (_set("win_rate", 3, 45.0), ("line 5", "'win_rate'", "between 0 and 1")),
}


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def _cli_refuses(argv: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI twice (no output file, then an existing one) and check it did no harm."""
    out.unlink(missing_ok=True)
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*")), "temporary file left behind"

    out.write_bytes(b"yesterday's report\n")
    assert main([*argv, "--out", str(out)]) == 2
    assert out.read_bytes() == b"yesterday's report\n"
    capsys.readouterr()
    return err


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_log_read_logs(case: str, good_logs: pd.DataFrame, tmp_path: Path) -> None:
    edit, fragments = BAD_CASES[case]
    path = _write_csv(edit(good_logs), tmp_path / "logs.csv")
    with pytest.raises(LogError) as caught:
        read_logs(path)
    message = str(caught.value)
    assert isinstance(caught.value, InputError)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_log_cli(
    case: str, good_logs: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, fragments = BAD_CASES[case]
    path = _write_csv(edit(good_logs), tmp_path / "logs.csv")
    err = _cli_refuses(["diagnose", "--history", str(path)], tmp_path / "report.txt", capsys)
    assert err.startswith("autopilot diagnose: error: ")
    assert fragments[0] in err


def _unreadable_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(LOG_COLUMNS) + "\n")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    broken_parquet = tmp_path / "broken.parquet"
    broken_parquet.write_bytes(b"PAR1 this is not a parquet file")
    spreadsheet = tmp_path / "logs.xlsx"
    spreadsheet.write_bytes(b"PK")
    return {
        "empty file": (empty, "empty"),
        "header only": (header_only, "no rows"),
        "binary garbage": (binary, "cannot read"),
        "broken parquet": (broken_parquet, "cannot read"),
        "unknown suffix": (spreadsheet, "use a .csv or .parquet file"),
        "missing file": (tmp_path / "nowhere.csv", "does not exist"),
        "folder": (tmp_path, "unknown log file type"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty file",
        "header only",
        "binary garbage",
        "broken parquet",
        "unknown suffix",
        "missing file",
        "folder",
    ],
)
def test_unreadable_file(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, fragment = _unreadable_files(tmp_path)[case]
    with pytest.raises(LogError, match=fragment):
        read_logs(path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    err = _cli_refuses(["diagnose", "--history", str(path)], out_dir / "report.json", capsys)
    assert fragment in err


def test_parquet_rows_are_counted_from_one(good_logs: pd.DataFrame, tmp_path: Path) -> None:
    bad = _set("spend", 3, -5.0)(good_logs).astype({"spend": float})
    path = tmp_path / "logs.parquet"
    bad.to_parquet(path, index=False)
    with pytest.raises(LogError, match=r"row 4, column 'spend': negative value"):
        read_logs(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_then_read_round_trip(good_logs: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    clean = validate_logs(good_logs)
    path = tmp_path / f"logs{suffix}"
    write_logs(clean, path)
    again = read_logs(path)
    pd.testing.assert_frame_equal(again, clean)
    assert list(again.columns)[:11] == ["timestamp", *LOG_COLUMNS[:10]]
    assert str(again["impressions"].dtype) == "int64"
    assert str(again["spend"].dtype) == "float64"


def test_write_refuses_bad_rows_and_keeps_the_old_file(
    good_logs: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "logs.csv"
    path.write_bytes(b"old\n")
    with pytest.raises(LogError, match="negative"):
        write_logs(_set("spend", 0, -1.0)(good_logs), path)
    with pytest.raises(LogError, match="use a .csv or .parquet file"):
        write_logs(good_logs, tmp_path / "logs.json")
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs.csv"]


def test_timestamp_instead_of_date_and_hour(good_logs: pd.DataFrame, tmp_path: Path) -> None:
    stamped = good_logs.drop(columns=["date", "hour"])
    stamped.insert(
        0,
        "timestamp",
        pd.to_datetime(good_logs["date"]) + pd.to_timedelta(good_logs["hour"], unit="h"),
    )
    path = _write_csv(stamped, tmp_path / "stamped.csv")
    pd.testing.assert_frame_equal(read_logs(path), validate_logs(good_logs))

    stamped["timestamp"] = stamped["timestamp"] + pd.Timedelta(minutes=30)
    with pytest.raises(LogError, match="line 2 .*column 'timestamp'.*start of an hour"):
        read_logs(_write_csv(stamped, tmp_path / "half.csv"))


def test_extra_columns_are_dropped_and_optional_ones_kept(good_logs: pd.DataFrame) -> None:
    extra = good_logs.assign(campaign_id="c-1", creative_id="")
    clean = validate_logs(extra)
    assert "campaign_id" not in clean.columns
    assert (clean["creative_id"] == "").all()
    assert clean["creative_type"].eq("original").all()


def test_validate_logs_counts_data_rows() -> None:
    rows = pd.DataFrame(
        {
            "date": ["2026-01-05"] * 2,
            "hour": [0, 1],
            "product": ["serum"] * 2,
            "channel": ["feed"] * 2,
            "impressions": [100, 100],
            "clicks": [3, 300],
            "orders": [0, 1],
            "spend": [2.0, 2.0],
            "gmv": [0.0, 150.0],
            "bid": [28.0, 28.0],
        }
    )
    with pytest.raises(LogError, match=r"^my logs: row 2, column 'clicks': 300 clicks exceed"):
        validate_logs(rows, source="my logs")
