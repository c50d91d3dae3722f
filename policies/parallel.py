"""Run many independent tasks on one machine or on a Ray cluster, with one interface.

:func:`run_tasks` maps a module-level function over picklable items and yields
``(index, result)`` pairs as the results arrive, so that the caller can write each one
before the next (a killed run keeps what was written). Three ways to run:

- ``backend="local", workers=1``: in this process, in order;
- ``backend="local", workers=N``: a pool of N spawned processes on this machine;
- ``backend="ray"``: Ray tasks, on a local Ray started for the run (``address=None``,
  ``workers`` CPUs, shut down afterwards) or on a running cluster (``address="auto"`` or
  ``"ray://host:10001"``). Ray is the optional extra ``budget-autopilot[ray]``.

The tasks are pure functions of their items, so the results do not depend on the backend
or on the number of workers; only their arrival order does, and the callers put them back
in order. The workers receive the items and return the results: no task needs the
driver's files, so a cluster needs no shared disk.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from envs.errors import InputError

BACKENDS = ("local", "ray")


class BackendError(InputError):
    """A backend that cannot run (an unknown name, Ray missing or unreachable)."""


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_backend(backend: str, workers: int, address: str | None) -> None:
    """Refuse a bad backend setting before any work.

    Raises:
        BackendError: an unknown backend, fewer than one worker, an address without Ray,
            or Ray not installed.
    """
    if backend not in BACKENDS:
        raise BackendError(f"--backend {backend!r}: use {' or '.join(BACKENDS)}")
    if workers < 1:
        raise BackendError(f"--workers {workers}: give at least 1")
    if address is not None and backend != "ray":
        raise BackendError("--address is the Ray cluster's address; give it with --backend ray")
    if backend == "ray":
        _import_ray()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BackendError(
            "--backend ray needs Ray: pip install 'budget-autopilot[ray]' (or use --backend local)"
        ) from None
    return ray


def _run_chunk(args: tuple[Callable[[Any], Any], list[Any]]) -> list[Any]:
    fn, items = args
    return [fn(item) for item in items]


def chunk_size(count: int, workers: int, largest: int = 16) -> int:
    """Items per worker call for ``count`` items: a few calls per worker, so that the
    pool's overhead stays small next to the tasks while the last calls still spread over
    the workers."""
    return max(1, min(largest, count // (4 * max(1, workers))))


def _blocks(items: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    iterator = iter(items)
    start = 0
    while block := list(itertools.islice(iterator, size)):
        yield start, block
        start += len(block)


def run_tasks(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    chunk: int = 1,
) -> Iterator[tuple[int, Any]]:
    """``fn(item)`` for every item, yielded as ``(index, result)`` when each is done.

    ``fn`` must be a module-level function (it is pickled by reference). ``items`` is
    read lazily: at most two calls of ``chunk`` items per worker are in flight, so a
    generator of large items (a history's bytes) never sits in memory whole. An exception
    in ``fn`` stops the run and is raised here: tasks report expected failures in their
    results instead.

    Raises:
        BackendError: see :func:`check_backend`; also a Ray cluster that cannot be reached.
    """
    check_backend(backend, workers, address)
    if backend == "ray":
        yield from _run_ray(fn, _blocks(items, chunk), workers, address)
    elif workers == 1:
        for index, item in enumerate(items):
            yield index, fn(item)
    else:
        yield from _run_pool(fn, _blocks(items, chunk), workers)


def _run_pool(fn, blocks, workers) -> Iterator[tuple[int, Any]]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # no fork of a threaded driver
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: dict[Any, int] = {}

        def fill() -> None:
            for start, block in itertools.islice(blocks, max(0, 2 * workers - len(pending))):
                pending[pool.submit(_run_chunk, (fn, block))] = start

        fill()
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    start = pending.pop(future)
                    yield from enumerate(future.result(), start=start)
                fill()
        finally:
            for future in pending:
                future.cancel()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a ``HOST:PORT`` that accepts no connection (Ray itself would retry for
    minutes); ``auto`` and ``ray://`` addresses are left to Ray."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise BackendError(
            f"--address {address!r}: give HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379), "
            "auto, or ray://HOST:10001"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise _unreachable(address, str(err.strerror or err)) from None


def _unreachable(address: str | None, reason: str) -> BackendError:
    return BackendError(
        f"--address {address}: cannot reach the Ray cluster ({reason}); start it with "
        "`ray start --head` or leave --address out for a local Ray"
    )


def _run_ray(fn, blocks, workers, address) -> Iterator[tuple[int, Any]]:
    ray = _import_ray()
    if address is not None:
        _check_reachable(address)
    started = not ray.is_initialized()
    if started:
        # Ray's own start-up notices stay off the command's output; errors still show.
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        if address is None:
            options["num_cpus"] = workers
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise _unreachable(address, reason) from None
    try:
        capacity = max(1, int(ray.cluster_resources().get("CPU", workers)))
        remote = ray.remote(num_cpus=1, max_retries=3)(_run_chunk)
        pending: dict[Any, int] = {}

        def fill() -> None:
            for start, block in itertools.islice(blocks, max(0, 2 * capacity - len(pending))):
                pending[remote.remote((fn, block))] = start

        fill()
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    start = pending.pop(ref)
                    yield from enumerate(ray.get(ref), start=start)
                fill()
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
    finally:
        if started:
            ray.shutdown()
