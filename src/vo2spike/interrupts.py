"""Interruptions (Ctrl-C, ``kill``) that can never leave a half-written output.

``install`` makes SIGINT and SIGTERM behave alike. Until the command is ready to clean up
(``raising``), a signal ends the process at once with exit code 130: nothing has been written
yet. Inside ``raising`` it raises KeyboardInterrupt, except within a :func:`deferred` section
(creating, marking, committing or removing an output), where it waits until the section ends.
Temporary outputs are registered with :func:`remove_on_interrupt`; :func:`cleanup` removes
whatever is still registered and may run any number of times.

Signals are handled in Python's main thread only (CPython runs handlers there, between
bytecodes), so deferral is a counter, not a signal mask: torch's worker threads never see it.
This module imports nothing from vo2spike: every layer may use it.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path
from types import FrameType

EXIT_CODE = 130
SIGNALS = (signal.SIGINT, signal.SIGTERM)
MESSAGE = "interrupted: nothing half-written was left behind"

_depth = 0  # nesting of deferred() sections
_pending = False  # a signal came during a deferred section
_raising = False  # inside raising(): KeyboardInterrupt instead of exiting
_stopping = False  # a KeyboardInterrupt is already on its way up: later signals are ignored
_registered: dict[Path, None] = {}  # temporary outputs to remove if interrupted (ordered)


def _act() -> None:
    global _stopping
    if _raising:
        if _stopping:
            return
        _stopping = True
        raise KeyboardInterrupt
    cleanup()
    os.write(2, (MESSAGE + "\n").encode())
    os._exit(EXIT_CODE)


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _depth:
        _pending = True
        return
    _act()


def install() -> dict[int, object] | None:
    """Handle SIGINT and SIGTERM as described above; returns the previous handlers (for
    :func:`restore`), or None outside the main thread, where signals cannot be handled."""
    global _pending, _stopping, _raising
    if threading.current_thread() is not threading.main_thread():
        return None
    _pending = _stopping = _raising = False
    return {s: signal.signal(s, _handler) for s in SIGNALS}


def restore(previous: dict[int, object] | None) -> None:
    """Put back the handlers :func:`install` replaced."""
    for s, h in (previous or {}).items():
        signal.signal(s, h)


def ignore() -> None:
    """Ignore SIGINT and SIGTERM from now on (the command has finished)."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def installed() -> bool:
    """True if this module's handler is the one for SIGTERM."""
    return signal.getsignal(signal.SIGTERM) is _handler


class raising:
    """A block whose interruption raises KeyboardInterrupt (for the caller to clean up and
    exit 130); outside it, an interruption exits at once."""

    def __enter__(self) -> raising:
        global _raising
        _raising = True
        return self

    def __exit__(self, *exc: object) -> None:
        global _raising
        _raising = False


class deferred:
    """A section an interruption may not cut in two: a signal that arrives inside it takes
    effect when the outermost section ends."""

    def __enter__(self) -> deferred:
        global _depth
        _depth += 1
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        global _depth, _pending
        _depth -= 1
        if _depth == 0 and _pending:
            _pending = False
            if exc_type is None or not issubclass(exc_type, KeyboardInterrupt):  # type: ignore[arg-type]
                _act()


def remove_on_interrupt(path: Path) -> None:
    """Register a temporary file or folder that :func:`cleanup` removes."""
    _registered[Path(path)] = None


def keep(path: Path) -> None:
    """Unregister ``path`` (it was committed, removed, or is to be kept)."""
    _registered.pop(Path(path), None)


def is_registered(path: Path) -> bool:
    """True if ``path`` is a temporary output :func:`cleanup` would remove."""
    return Path(path) in _registered


def discard(path: Path) -> None:
    """Remove ``path`` if it is still registered (a temporary output of this process, not
    kept), and unregister it; anything else is left alone."""
    path = Path(path)
    with deferred():
        if path not in _registered:
            return
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except OSError:
                pass
        _registered.pop(path, None)


def cleanup() -> None:
    """Remove every registered temporary output; safe to call again."""
    with deferred():
        for path in reversed(list(_registered)):
            discard(path)
