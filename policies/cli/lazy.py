"""Deferred imports for the command line: a module that a dependency imports but a command
never uses is made on import and run on first use.

cvxpy imports ``scipy.stats`` when it is imported, for one function (``entropy``, in an
atom the MPC never builds), and ``scipy.stats`` takes about 0.5 s to import: half of
``autopilot recommend``'s start-up; it imports ``scipy.optimize`` (0.2 s) only to see
whether its ``SCIPY`` solver is installed. :func:`defer` puts a module object in its place
whose code runs the first time any of its attributes is read. The module object is the
real one (its spec, path and loader as the import system would set them), so a later
``import scipy.stats``, ``from scipy.stats import norm`` or a submodule import works as
before, only later. The names listed in ``provides`` (imported by name at import time,
``from scipy.stats import entropy``) are thin functions that run the module and call its
own function, which then replaces them on the module.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Sequence

_LOCK = threading.RLock()


class _Deferred(types.ModuleType):
    """A module whose code has not run yet; reading a missing attribute runs it."""

    def __getattr__(self, name: str):
        _run(self)
        return getattr(self, name)


def _run(module: types.ModuleType) -> None:
    with _LOCK:
        if type(module) is not _Deferred:
            return
        module.__class__ = types.ModuleType
        try:
            module.__spec__.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module.__name__, None)  # let a later import try again
            raise


def _stand_in(module: types.ModuleType, name: str) -> Callable:
    def call(*args, **kwargs):
        _run(module)
        return getattr(module, name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{module.__name__}.{name}, imported on first call."
    return call


def defer(name: str, provides: Sequence[str] = ()) -> bool:
    """Put ``name`` in ``sys.modules`` unexecuted, with ``provides`` as stand-in
    functions; True when deferred, False when it is already imported or not found."""
    with _LOCK:
        if name in sys.modules:
            return False
        spec = importlib.util.find_spec(name)  # imports the parent package (cheap)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return False
        module = importlib.util.module_from_spec(spec)
        module.__class__ = _Deferred
        for attribute in provides:
            setattr(module, attribute, _stand_in(module, attribute))
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
        return True


def is_deferred(name: str) -> bool:
    """Whether ``name`` is imported but its code has not run yet."""
    return type(sys.modules.get(name)) is _Deferred


def defer_unused_imports() -> None:
    """The deferrals every command takes (see the module's docstring)."""
    defer("scipy.stats", provides=("entropy",))
    # cvxpy imports it to see whether its SCIPY solver is installed; the MPC never uses it.
    defer("scipy.optimize")
