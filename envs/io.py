"""Files in and out, safely: atomic writes, outputs that never replace inputs, bounded reads.

Writes: every output goes to a hidden temporary file beside its target
(``.NAME.<pid>.*.tmp``; one left by a killed run is removed by the next write of NAME),
is flushed and fsynced, given the mode the old file had (or the one the umask allows for a
new file), and renamed over the target; the folder is fsynced after the rename. A reader
therefore sees the old file or the new one, never half of one. Several outputs of one run
are written as one :class:`OutputSet`: every temporary file is complete before the first
rename, so a failure while writing leaves every old file as it was.

Reads: :func:`read_input_bytes` refuses anything that is not a regular file (a FIFO would
block forever, ``/dev/zero`` never ends) and anything over a stated size, before reading.

Errors are :class:`FileInputError` / :class:`OutputError` (both :class:`InputError`), so the
CLI prints one line and exits with code 2.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from envs.errors import InputError

#: A leftover temporary file older than this (seconds) belongs to a run that was killed.
STALE_TMP_SECONDS = 600.0


class OutputError(InputError):
    """An output that cannot be written where asked (a folder, a read-only place, an input)."""


class FileInputError(InputError):
    """An input path that is not a readable regular file of a sensible size."""


def new_run_id() -> str:
    """A short id stamped on every output of one run, so a reader can tell a pair.

    Prefixed so that no reader takes it for a number (``7e92...`` is one in CSV)."""
    return f"run-{uuid.uuid4().hex[:12]}"


def _umask() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    """The mode the new file gets: the old file's, or what ``open()`` would give a new one."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some file systems cannot open a folder: no matter.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def remove_stale_temporaries(path: Path, older_than: float = STALE_TMP_SECONDS) -> int:
    """Delete ``.NAME.<pid>.*.tmp`` files beside ``path`` that a killed run left behind:
    those of a process that no longer exists, and any older than ``older_than`` seconds.

    Returns:
        How many were removed.
    """
    path = Path(path)
    removed = 0
    cutoff = time.time() - older_than
    with contextlib.suppress(OSError):
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):
            pid_text = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
            owner_gone = (
                pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text))
            )
            with contextlib.suppress(OSError):
                if leftover.is_file() and (owner_gone or leftover.stat().st_mtime < cutoff):
                    leftover.unlink()
                    removed += 1
    return removed


def _describe_os_error(err: OSError) -> str:
    return err.strerror or type(err).__name__


def check_output_path(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse, before any work is done, an output path that cannot be written.

    Raises:
        OutputError: the path is a folder, or names something that is not a regular file
            (a FIFO, a device), or its folder is missing and cannot be made, or is not
            writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: the {what} path is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: the {what} path is not a regular file; give a file name")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{path}: {folder} is not a folder; give a path inside a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"{path}: cannot write the {what} ({existing} is not writable); "
            "choose a folder you can write to"
        )
    return path


def check_outputs_distinct(
    inputs: Iterable[str | os.PathLike[str] | None],
    outputs: Iterable[str | os.PathLike[str] | None],
) -> None:
    """Refuse any output that is an input (the same file, also through links or another
    spelling of the path) and any two outputs that are one file.

    Raises:
        OutputError: names both paths.
    """
    ins = [Path(p) for p in inputs if p is not None]
    outs = [Path(p) for p in outputs if p is not None]

    def same(a: Path, b: Path) -> bool:
        try:
            if a.exists() and b.exists():
                return os.path.samefile(a, b)
        except OSError:
            pass
        return os.path.realpath(a) == os.path.realpath(b)

    for out in outs:
        for source in ins:
            if same(out, source):
                raise OutputError(
                    f"{out}: this output is the input {source}; writing it would destroy "
                    "the input, so choose another output name"
                )
    for i, first in enumerate(outs):
        for second in outs[i + 1 :]:
            if same(first, second):
                raise OutputError(
                    f"{first} and {second} are one file; give every output its own name"
                )


def check_input_file(
    path: str | os.PathLike[str],
    what: str,
    max_bytes: int,
    error: type[InputError] = FileInputError,
) -> Path:
    """``path`` if it is a regular file of at most ``max_bytes``, else a typed error.

    Non-regular files (FIFOs, devices, sockets) are refused without opening them, so a
    later read never blocks and never reads without end.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: the {what} does not exist; check the path") from None
    except OSError as err:
        raise error(f"{path}: cannot read the {what} ({_describe_os_error(err)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: the {what} is a folder; give a file")
    if not stat.S_ISREG(info.st_mode):
        raise error(
            f"{path}: the {what} is not a regular file (a pipe or a device); give a file on disk"
        )
    if info.st_size > max_bytes:
        raise error(
            f"{path}: the {what} is {info.st_size:,} bytes, more than the {max_bytes:,} "
            "allowed; give a smaller file"
        )
    return path


def read_input_bytes(
    path: str | os.PathLike[str],
    what: str,
    max_bytes: int,
    error: type[InputError] = FileInputError,
) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (see :func:`check_input_file`)."""
    path = check_input_file(path, what, max_bytes, error)
    try:
        # Non-blocking, and checked again on the open file: a path swapped for a FIFO
        # after the check above still cannot block the read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise error(f"{path}: the {what} is not a regular file; give a file on disk")
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise error(f"{path}: cannot read the {what} ({_describe_os_error(err)})") from None
    if len(data) > max_bytes:  # it grew while being read
        raise error(f"{path}: the {what} is over {max_bytes:,} bytes; give a smaller file")
    return data


def read_toml(
    path: str | os.PathLike[str],
    what: str,
    max_bytes: int,
    error: type[InputError] = FileInputError,
    hint: str = "",
) -> dict:
    """The table of a UTF-8 TOML file of at most ``max_bytes`` (see :func:`read_input_bytes`).

    Raises:
        error: the file cannot be read, or is not UTF-8 TOML (``hint`` is appended).
    """
    import tomllib

    data = read_input_bytes(path, what, max_bytes, error)
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise error(f"{path}: not a TOML {what} ({err}){hint}") from None


def check_keys(
    table: dict, known: Sequence[str], where: str, error: type[InputError] = FileInputError
) -> None:
    """Refuse a key of ``table`` outside ``known``, naming the keys that are.

    Raises:
        error: ``WHERE: unknown key 'K'; use A, B, ...``.
    """
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise error(f"{where}: unknown key {unknown[0]!r}; use {', '.join(known)}")


class OutputSet:
    """Several outputs of one run, written all or none.

    ``add(path, write)`` queues ``write(tmp_path)``; :meth:`commit` runs every writer into
    its temporary file, fsyncs them, and only when all succeeded renames them into place.
    If any writer fails, every temporary file is removed and no target changes.
    """

    def __init__(self) -> None:
        self._items: list[tuple[Path, Callable[[Path], None]]] = []

    def add(self, path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
        self._items.append((Path(path), write))

    def add_text(self, path: str | os.PathLike[str], text: str) -> None:
        self.add(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def add_bytes(self, path: str | os.PathLike[str], data: bytes) -> None:
        self.add(path, lambda tmp: tmp.write_bytes(data))

    def commit(self) -> None:
        staged: list[tuple[Path, Path]] = []
        current: Path | None = None
        renamed = 0
        try:
            for current, write in self._items:
                staged.append((self._stage(current, write), current))
            for tmp, current in staged:
                os.replace(tmp, current)
                renamed += 1
        except OSError as err:
            self._discard(staged)
            kept = "no output was changed" if renamed == 0 else "the other outputs were written"
            raise OutputError(
                f"{current}: cannot write the file ({_describe_os_error(err)}); {kept}; "
                "check that the folder is writable and has space"
            ) from None
        except BaseException:
            self._discard(staged)
            raise
        for folder in {path.parent for _, path in staged}:
            _fsync_dir(folder)

    @staticmethod
    def _discard(staged: Sequence[tuple[Path, Path]]) -> None:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    @staticmethod
    def _stage(path: Path, write: Callable[[Path], None]) -> Path:
        if path.is_dir():
            raise IsADirectoryError(21, "is a folder", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        mode = _target_mode(path)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write(tmp)
            os.chmod(tmp, mode)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    If ``write`` raises, the temporary file is removed and ``path`` is left as it was; an
    ``OSError`` becomes :class:`OutputError`.
    """
    outputs = OutputSet()
    outputs.add(path, write)
    outputs.commit()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
