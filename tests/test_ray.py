"""``--backend ray``: a Ray started here with 2 CPUs gives what the local backend gives."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from policies.batch import read_batch, run_batch
from policies.parallel import BackendError, check_backend, run_tasks
from policies.sweep import read_sweep, run_sweep
from tests.test_batch import BAD, GOOD, histories, without_run_id, write_batch  # noqa: F401
from tests.test_sweep import SWEEP, timeless, write

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_runs_every_task_once(local_ray):
    # A function the workers can import (a test module's they cannot): abs.
    results = dict(run_tasks(abs, range(0, -37, -1), backend="ray", workers=2, chunk=4))
    assert results == {i: i for i in range(37)}
    assert ray.is_initialized()  # a Ray the caller started is left running


def test_ray_and_local_batches_give_identical_plans(local_ray, histories, tmp_path):  # noqa: F811
    campaigns = read_batch(write_batch(histories, GOOD + BAD))
    local = run_batch(campaigns, tmp_path / "local", workers=1)
    remote = run_batch(campaigns, tmp_path / "ray", workers=2, backend="ray")
    for a, b in zip(local, remote, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }
    for campaign in GOOD:
        for suffix in (".csv",):
            pd.testing.assert_frame_equal(
                without_run_id(tmp_path / "local" / f"{campaign['id']}{suffix}"),
                without_run_id(tmp_path / "ray" / f"{campaign['id']}{suffix}"),
                check_exact=True,
            )


def test_ray_and_local_sweeps_give_identical_results(local_ray, tmp_path):
    sweep = read_sweep(write(tmp_path, SWEEP.replace("seeds = 2", "seeds = 1")))
    local, local_summary, _ = run_sweep(sweep, tmp_path / "local.parquet", workers=1)
    remote, remote_summary, _ = run_sweep(sweep, tmp_path / "ray.parquet", workers=2, backend="ray")
    pd.testing.assert_frame_equal(timeless(remote), timeless(local), check_exact=True)
    pd.testing.assert_frame_equal(remote_summary, local_summary, check_exact=True)


def test_without_ray_installed_the_backend_is_refused_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(BackendError, match=r"budget-autopilot\[ray\]"):
        check_backend("ray", 2, None)
    with pytest.raises(BackendError, match="--address"):
        check_backend("local", 2, "auto")


def test_an_unreachable_cluster_is_refused_in_one_line_before_any_output(
    histories,  # noqa: F811
    tmp_path,
    capsys,
):
    import socket

    from policies.cli import main

    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    batch = write_batch(histories, GOOD[:1])
    out = tmp_path / "out"
    argv = ["recommend", "--batch", str(batch), "--out-dir", str(out), "--backend", "ray",
            "--address", f"127.0.0.1:{port}"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot reach the Ray cluster" in err and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("count, chunk", [(0, 1), (1, 3), (7, 1), (23, 4), (50, 16)])
def test_the_local_pool_yields_every_index_once(count, chunk):
    results = list(run_tasks(abs, [-i for i in range(count)], workers=2, chunk=chunk))
    assert sorted(i for i, _ in results) == list(range(count))
    assert all(value == i for i, value in results)
