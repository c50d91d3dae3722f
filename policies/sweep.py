"""Evaluation sweeps: ``autopilot evaluate --sweep sweep.toml --out results.parquet``.

A sweep file is TOML (docs/scale.md, "Sweeps")::

    strategies = ["mpc", "online-lp", "pid"]   # the oracle always runs, as in evaluate
    seeds = 5                                  # episodes per cell, seeds first_seed ...
    first_seed = 0
    priors = ["fitted", "cold"]                # default ["fitted"]
    scenarios = ["default", "my-market.toml"]  # presets or TOML files (relative to this file)
    budget_scale = [0.5, 1.0, 2.0]             # times each scenario's budget (default [1])
    roi_target_scale = [0.8, 1.0]              # times its ROI target (default [1])
    policy = "ppo.safetensors"                 # for the ppo-mpc strategy (optional)

    [sample]                  # random scenarios from the sampler, besides `scenarios`
    count = 20
    seed = 7
    horizon_hours = 24        # default 24
    [sample.ranges]           # any field of envs.sampler.SamplerRanges
    n_channels = [2, 3]

The grid is every scenario x budget scale x ROI target scale (a *cell*) x seed; each
(cell, seed) is one *unit*, run by one worker: the oracle once, then every strategy under
every prior, with common random numbers. The output has one row per episode
(:data:`RESULT_COLUMNS`) and the summary one row per cell, prior and strategy
(:data:`SUMMARY_COLUMNS`). Each finished unit is journaled in ``OUT.parts/`` as it
arrives; a rerun reuses the journal and the rows of an existing output, so a killed sweep
resumes with nothing lost or done twice. Results do not depend on the backend or the
number of workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.errors import InputError
from envs.scenario import Scenario

#: Columns of a sweep's results, one row per episode.
RESULT_COLUMNS = (
    "unit",
    "cell",
    "scenario",
    "source",
    "budget_scale",
    "roi_target_scale",
    "budget",
    "roi_target",
    "prior",
    "strategy",
    "seed",
    "score",
    "gmv",
    "spend",
    "roi",
    "budget_violated",
    "roi_missed",
    "oracle_score",
    "pct_of_oracle",
    "seconds",
)
#: Columns of the summary, one row per cell, prior and strategy.
SUMMARY_COLUMNS = (
    "cell",
    "scenario",
    "budget_scale",
    "roi_target_scale",
    "prior",
    "strategy",
    "episodes",
    "score_mean",
    "pct_of_oracle",
    "gmv_mean",
    "spend_mean",
    "roi_mean",
    "roi_missed_rate",
    "budget_violations",
)
SWEEP_KEYS = (
    "strategies",
    "seeds",
    "first_seed",
    "priors",
    "scenarios",
    "budget_scale",
    "roi_target_scale",
    "policy",
    "sample",
)
SAMPLE_KEYS = ("count", "seed", "horizon_hours", "ranges")
#: The oracle's rows: it reads the true market whatever the strategies' prior.
ORACLE_PRIOR = "clairvoyant"
MAX_SWEEP_BYTES = 1024**2
#: Most episodes (strategies' and the oracle's) one sweep may hold.
MAX_EPISODES = 1_000_000


class SweepError(InputError):
    """A sweep file that cannot be run (the message names the key and the fix)."""


@dataclass(frozen=True)
class SweepUnit:
    """One (cell, seed) of a sweep: what a worker runs."""

    key: str
    cell: int
    source: str
    scenario: Scenario
    budget_scale: float
    roi_target_scale: float
    seed: int
    priors: tuple[str, ...]
    strategies: tuple[str, ...]
    strategy_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: its units in order."""

    units: list[SweepUnit]
    strategies: tuple[str, ...]
    priors: tuple[str, ...]
    policy: Path | None

    @property
    def episodes(self) -> int:
        return len(self.units) * (1 + len(self.strategies) * len(self.priors))


def _number_list(data: dict, key: str, where: str, default: list[float]) -> list[float]:
    values = data.get(key, default)
    if not isinstance(values, list) or not values:
        raise SweepError(f"{where}: {key} must be a non-empty list of numbers, e.g. [0.5, 1.0]")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SweepError(f"{where}: {key} holds {value!r}; give plain numbers")
        if not (math.isfinite(value) and value > 0):
            raise SweepError(f"{where}: {key} holds {value!r}; give numbers above 0")
    return [float(v) for v in values]


def _whole(data: dict, key: str, where: str, default: int, low: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SweepError(f"{where}: {key} must be a whole number of at least {low}")
    return value


def _sampled(sample: Any, where: str) -> list[tuple[str, Scenario]]:
    import numpy as np

    from envs.io import check_keys
    from envs.sampler import SamplerRanges, sample_scenario

    where = f"{where}: [sample]"
    if not isinstance(sample, dict):
        raise SweepError(f"{where} must be a table with count and seed")
    check_keys(sample, SAMPLE_KEYS, where, SweepError)
    if "count" not in sample or "seed" not in sample:
        raise SweepError(f"{where} needs count and seed")
    count = _whole(sample, "count", where, 0, 1)
    seed = _whole(sample, "seed", where, 0, 0)
    horizon = _whole(sample, "horizon_hours", where, 24, 1)
    given = sample.get("ranges", {})
    if not isinstance(given, dict):
        raise SweepError(f"{where}: ranges must be a table of SamplerRanges fields")
    defaults = SamplerRanges()
    names = [f.name for f in dataclasses.fields(SamplerRanges)]
    changes = {}
    for name, value in given.items():
        if name not in names:
            raise SweepError(f"{where}.ranges: unknown field {name!r}; use {', '.join(names)}")
        current = getattr(defaults, name)
        if isinstance(current, tuple):
            ok = (
                isinstance(value, list)
                and len(value) == len(current)
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            )
            if not ok:
                raise SweepError(f"{where}.ranges: {name} must be a list of {len(current)} numbers")
            if len(current) == 2 and not (0 <= value[0] <= value[1]):
                raise SweepError(
                    f"{where}.ranges: {name} must be [low, high] with 0 <= low <= high"
                )
            kind = type(current[0])
            value = tuple(kind(v) for v in value)
        elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise SweepError(f"{where}.ranges: {name} must be a probability between 0 and 1")
        changes[name] = value
    ranges = dataclasses.replace(defaults, **changes)
    drawn = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        name = f"sample-{index}"
        try:
            scenario = sample_scenario(rng, ranges, horizon, name=name)
        except (ValueError, InputError) as err:
            raise SweepError(f"{where}: the ranges give no valid scenario ({err})") from None
        drawn.append((f"sample:{seed}:{index}", scenario))
    return drawn


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_sweep(path: str | os.PathLike[str]) -> Sweep:
    """The units of a sweep file, checked before any episode runs.

    Raises:
        SweepError: not TOML, an unknown key, an unknown strategy or prior, bad lists, no
            scenario, a scenario file that does not load, a horizon over the limit, or more
            than :data:`MAX_EPISODES` episodes.
    """
    from envs.io import check_keys, read_toml
    from envs.market_env import resolve_scenario
    from envs.presets import PRESETS
    from policies.evaluate import check_horizons
    from policies.prior import PRIOR_MODES
    from policies.strategy import strategy_names

    path = Path(path)
    where = str(path)
    parsed = read_toml(path, "sweep file", MAX_SWEEP_BYTES, SweepError, "; see docs/scale.md")
    check_keys(parsed, SWEEP_KEYS, where, SweepError)
    strategies = parsed.get("strategies")
    known = strategy_names()
    if not isinstance(strategies, list) or not strategies:
        raise SweepError(f'{where}: strategies must be a list of names, e.g. ["mpc", "pid"]')
    for name in strategies:
        if name not in known:
            raise SweepError(f"{where}: unknown strategy {name!r}; use any of {', '.join(known)}")
    strategies = tuple(dict.fromkeys(s for s in strategies if s != "oracle"))
    priors = parsed.get("priors", ["fitted"])
    if not isinstance(priors, list) or not priors or any(p not in PRIOR_MODES for p in priors):
        raise SweepError(f"{where}: priors must be a list of {', '.join(PRIOR_MODES)}")
    priors = tuple(dict.fromkeys(priors))
    seeds = _whole(parsed, "seeds", where, 1, 1)
    first_seed = _whole(parsed, "first_seed", where, 0, 0)
    budget_scales = _number_list(parsed, "budget_scale", where, [1.0])
    roi_scales = _number_list(parsed, "roi_target_scale", where, [1.0])
    policy = None
    kwargs: dict[str, dict[str, Any]] = {}
    if "policy" in parsed:
        if not isinstance(parsed["policy"], str):
            raise SweepError(f"{where}: policy must be a path string")
        policy = path.parent / parsed["policy"]
        from policies.cli.recommend import check_policy

        check_policy(policy)
        kwargs["ppo-mpc"] = {"path": str(policy)}
    elif "ppo-mpc" in strategies:
        raise SweepError(f"{where}: the ppo-mpc strategy needs policy = PATH (a .safetensors)")
    names = parsed.get("scenarios", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SweepError(f"{where}: scenarios must be a list of preset names or TOML paths")
    sources: list[tuple[str, Scenario]] = []
    for name in names:
        source = name if name in PRESETS else str(path.parent / name)
        sources.append((source, resolve_scenario(source)))
    if "sample" in parsed:
        sources += _sampled(parsed["sample"], where)
    if not sources:
        raise SweepError(f"{where}: no scenarios; give scenarios = [...] or a [sample] table")
    check_horizons([scenario for _, scenario in sources])
    cells = len(sources) * len(budget_scales) * len(roi_scales)
    episodes = cells * seeds * (1 + len(strategies) * len(priors))
    if episodes > MAX_EPISODES:
        raise SweepError(
            f"{where}: {episodes:,} episodes is over {MAX_EPISODES:,}; split the sweep"
        )
    policy_digest = _digest(policy) if policy is not None else None
    units = []
    cell = 0
    for source, base in sources:
        for budget_scale in budget_scales:
            for roi_scale in roi_scales:
                scenario = base.replace(
                    budget=base.budget * budget_scale, roi_target=base.roi_target * roi_scale
                )
                spec = {
                    "scenario": scenario.to_dict(),
                    "priors": priors,
                    "strategies": strategies,
                    "policy": policy_digest,
                }
                for seed in range(first_seed, first_seed + seeds):
                    text = json.dumps(spec | {"seed": seed}, sort_keys=True, default=str)
                    units.append(
                        SweepUnit(
                            key=hashlib.sha256(text.encode()).hexdigest()[:20],
                            cell=cell,
                            source=source,
                            scenario=scenario,
                            budget_scale=budget_scale,
                            roi_target_scale=roi_scale,
                            seed=seed,
                            priors=priors,
                            strategies=strategies,
                            strategy_kwargs=kwargs,
                        )
                    )
                cell += 1
    seen: set[str] = set()
    for unit in units:
        if unit.key in seen:
            raise SweepError(
                f"{where}: scenario {unit.source!r} at budget x{unit.budget_scale:g}, ROI target "
                f"x{unit.roi_target_scale:g} is listed twice; list every scenario and scale once"
            )
        seen.add(unit.key)
    return Sweep(units=units, strategies=strategies, priors=priors, policy=policy)


def run_unit(unit: SweepUnit) -> list[dict[str, Any]]:
    """Every episode of one unit: the oracle, then each strategy under each prior (one
    prior market per prior, shared by the strategies: common random numbers)."""
    from policies.evaluate import run_episode
    from policies.prior import prior_market
    from policies.strategy import make_strategy

    base = {
        "unit": unit.key,
        "cell": unit.cell,
        "scenario": unit.scenario.name,
        "source": unit.source,
        "budget_scale": unit.budget_scale,
        "roi_target_scale": unit.roi_target_scale,
        "budget": unit.scenario.budget,
        "roi_target": unit.scenario.roi_target,
        "seed": unit.seed,
    }

    def row(result, prior: str, seconds: float) -> dict[str, Any]:
        return base | {
            "prior": prior,
            "strategy": result.strategy,
            "score": result.score,
            "gmv": result.gmv,
            "spend": result.spend,
            "roi": result.roi,
            "budget_violated": bool(result.budget_violated),
            "roi_missed": bool(result.roi_missed),
            "seconds": round(seconds, 4),
        }

    started = time.perf_counter()
    oracle = run_episode(make_strategy("oracle"), unit.scenario, unit.seed, "true")
    rows = [row(oracle, ORACLE_PRIOR, time.perf_counter() - started)]
    for prior in unit.priors:
        knowledge = prior_market(unit.scenario, prior, unit.seed)
        for name in unit.strategies:
            started = time.perf_counter()
            strategy = make_strategy(name, **unit.strategy_kwargs.get(name, {}))
            result = run_episode(strategy, unit.scenario, unit.seed, prior, knowledge)
            rows.append(row(result, prior, time.perf_counter() - started))
    for item in rows:
        item["oracle_score"] = oracle.score
        item["pct_of_oracle"] = 100.0 * item["score"] / oracle.score if oracle.score else math.nan
    return rows


def journal_path(out: Path) -> Path:
    """The folder where a sweep journals its finished units: ``OUT.parts``."""
    return out.with_name(out.name + ".parts")


def _reusable(out: Path, sweep: Sweep) -> dict[str, list[dict[str, Any]]]:
    """Rows of finished units from the journal and from an earlier output, by unit key."""
    import pandas as pd

    from bidder.logs import table_format

    expected = 1 + len(sweep.strategies) * len(sweep.priors)
    wanted = {unit.key for unit in sweep.units}
    found: dict[str, list[dict[str, Any]]] = {}
    if out.is_file():
        try:
            frame = (
                pd.read_csv(out)
                if table_format(out, "sweep results") == "csv"
                else pd.read_parquet(out)
            )
            if set(RESULT_COLUMNS) <= set(frame.columns):
                for key, group in frame.groupby("unit", sort=False):
                    if key in wanted and len(group) == expected:
                        found[key] = group[list(RESULT_COLUMNS)].to_dict("records")
        except (OSError, ValueError, ImportError):
            pass  # an unreadable earlier output is recomputed, then replaced
    journal = journal_path(out)
    if journal.is_dir():
        for key in wanted - set(found):
            part = journal / f"{key}.json"
            try:
                rows = json.loads(part.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(rows, list) and len(rows) == expected:
                found[key] = rows
    return found


def summarise(results) -> Any:
    """The summary table of a results frame: one row per cell, prior and strategy."""
    import pandas as pd

    if len(results) == 0:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    oracle = results[results["strategy"] == "oracle"].groupby("cell")["score"].mean()
    keys = ["cell", "scenario", "budget_scale", "roi_target_scale", "prior", "strategy"]
    grouped = results.groupby(keys, sort=False)
    summary = grouped.agg(
        episodes=("score", "size"),
        score_mean=("score", "mean"),
        gmv_mean=("gmv", "mean"),
        spend_mean=("spend", "mean"),
        roi_mean=("roi", "mean"),
        roi_missed_rate=("roi_missed", "mean"),
        budget_violations=("budget_violated", "sum"),
    ).reset_index()
    reference = summary["cell"].map(oracle)
    summary["pct_of_oracle"] = (100.0 * summary["score_mean"] / reference).where(reference > 0)
    summary["budget_violations"] = summary["budget_violations"].astype(int)
    return summary[list(SUMMARY_COLUMNS)]


def summary_path(out: Path) -> Path:
    """The summary's default path: ``OUT`` with ``.summary.csv`` for its suffix."""
    return out.with_name(out.stem + ".summary.csv")


def run_sweep(
    sweep: Sweep,
    out: str | os.PathLike[str],
    summary: str | os.PathLike[str] | None = None,
    *,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    progress=None,
) -> tuple[Any, Any, int]:
    """Run every unit not already finished; write the results and the summary together.

    Returns:
        ``(results, summary, reused)``: the frames written and how many units came from
        an earlier run.
    """
    import shutil

    import pandas as pd

    from bidder.logs import table_writer
    from envs.io import OutputSet, atomic_write_text
    from policies.parallel import chunk_size, run_tasks

    out = Path(out)
    summary = summary_path(out) if summary is None else Path(summary)
    done = _reusable(out, sweep)
    todo = [unit for unit in sweep.units if unit.key not in done]
    journal = journal_path(out)  # created with the first unit journaled
    finished = len(done)
    if progress is not None:
        progress(finished, len(sweep.units))
    for _, rows in run_tasks(
        run_unit,
        todo,
        backend=backend,
        workers=workers,
        address=address,
        chunk=max(1, chunk_size(len(todo), workers, largest=4)),
    ):
        key = rows[0]["unit"]
        atomic_write_text(journal / f"{key}.json", json.dumps(rows) + "\n")
        done[key] = rows
        finished += 1
        if progress is not None:
            progress(finished, len(sweep.units))
    ordered = [row for unit in sweep.units for row in done[unit.key]]
    results = pd.DataFrame(ordered, columns=list(RESULT_COLUMNS))
    table = summarise(results)
    outputs = OutputSet()
    outputs.add(out, table_writer(results, out, "sweep results"))
    outputs.add(summary, table_writer(table, summary, "sweep summary"))
    outputs.commit()
    shutil.rmtree(journal, ignore_errors=True)
    return results, table, len(sweep.units) - len(todo)


def format_summary(table) -> str:
    """The summary as a plain-text table."""
    lines = [
        f"{'cell':>4}  {'scenario':<16}{'budget x':>9}{'ROI x':>7}  {'prior':<12}"
        f"{'strategy':<14}{'episodes':>9}{'score':>12}{'% oracle':>10}{'ROI':>7}"
        f"{'ROI missed':>12}{'overspent':>10}"
    ]
    for row in table.itertuples(index=False):
        pct = "-" if _missing(row.pct_of_oracle) else f"{row.pct_of_oracle:.1f}%"
        lines.append(
            f"{row.cell:>4}  {row.scenario:<16}{row.budget_scale:>9g}{row.roi_target_scale:>7g}  "
            f"{row.prior:<12}{row.strategy:<14}{row.episodes:>9}{row.score_mean:>12,.0f}"
            f"{pct:>10}{row.roi_mean:>7.2f}{100 * row.roi_missed_rate:>11.0f}%"
            f"{row.budget_violations:>10}"
        )
    return "\n".join(lines)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
