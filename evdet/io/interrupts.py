"""Ctrl-C (SIGINT) that always stops a command.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread is at that instant. When that is
inside a weakref callback or a ``__del__`` (h5py, numpy and torch free objects through them all the time),
Python prints ``Exception ignored in ...`` and drops the exception: the command then runs on to its end and
exits 0 as if nothing had happened (about one Ctrl-C in three during ``evdet-generate-hdf5``). Under
:func:`catch_interrupts` the handler remembers the interrupt before it raises; the long loops call
:func:`check_interrupt` at each step (a batch of frames, a recording, a video frame), which raises again
when the first raise was dropped, and leaving the block normally with an interrupt pending raises too;
worker processes do the same (:func:`worker_init`), and a parallel command cancels its queued jobs when
interrupted. Outputs are atomic (:mod:`evdet.io.atomic`), so an interrupted command leaves its finished
outputs and no half-written one. :func:`interruptible` runs an app's ``main`` under it and turns the
interrupt into one line and exit status 130 (the shell's 128 + SIGINT).
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec

__all__ = ["EXIT_INTERRUPTED", "catch_interrupts", "check_interrupt", "interruptible", "worker_init"]

P = ParamSpec("P")

#: Exit status of an app stopped by Ctrl-C.
EXIT_INTERRUPTED = 130

_pending = False


def _handler(signum, frame) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def _unraisable(info) -> None:
    """``sys.unraisablehook`` under :func:`catch_interrupts`: a dropped ``KeyboardInterrupt`` is
    remembered (:func:`_handler`), so its "Exception ignored" report is noise; others are reported."""
    if not isinstance(info.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(info)


def _install() -> None:
    """The remembering SIGINT handler and the quiet unraisable hook, nothing pending yet."""
    global _pending
    _pending = False
    signal.signal(signal.SIGINT, _handler)
    sys.unraisablehook = _unraisable


def worker_init() -> None:
    """``initializer`` of evdet's worker processes: Ctrl-C (which reaches the whole process group) is
    never lost in a worker either (its job stops at the next step, its outputs are atomic), and dropped
    raises are not reported."""
    _install()


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` when a Ctrl-C arrived under :func:`catch_interrupts` (a no-op
    otherwise; cheap enough for every step of a loop)."""
    if _pending:
        raise KeyboardInterrupt


@contextmanager
def catch_interrupts() -> Iterator[None]:
    """Within the block, a Ctrl-C is never lost (module docstring). Outside the main thread, or where
    SIGINT is ignored (a background job of a non-interactive shell) or handled by someone else, it
    changes nothing.

    Raises:
        KeyboardInterrupt: at the end of the block, for a Ctrl-C whose first raise Python dropped.
    """
    global _pending
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    hook = sys.unraisablehook
    _install()
    try:
        yield
        check_interrupt()
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = hook
        _pending = False


def interruptible(prog: str) -> Callable[[Callable[P, int]], Callable[P, int]]:
    """Decorator of an app's ``main``: it runs under :func:`catch_interrupts`, and a Ctrl-C prints
    ``PROG: interrupted ...`` on stderr and returns :data:`EXIT_INTERRUPTED` instead of a traceback."""

    def wrap(main: Callable[P, int]) -> Callable[P, int]:
        @functools.wraps(main)
        def run(*args: P.args, **kwargs: P.kwargs) -> int:
            try:
                with catch_interrupts():
                    return main(*args, **kwargs)
            except KeyboardInterrupt:
                print(f"{prog}: interrupted; the outputs finished so far are kept, none is half-written",
                      file=sys.stderr)
                return EXIT_INTERRUPTED

        return run

    return wrap
