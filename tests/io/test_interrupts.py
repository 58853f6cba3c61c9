"""evdet.io.interrupts: a Ctrl-C that Python drops (raised inside a __del__ or weakref callback) still
stops the command."""

from __future__ import annotations

import signal

import pytest

from evdet.io.interrupts import EXIT_INTERRUPTED, catch_interrupts, check_interrupt, interruptible

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the drops


class _CtrlCWhileFreed:
    """Ctrl-C arriving while Python frees an object: the KeyboardInterrupt is raised in ``__del__``,
    where Python prints "Exception ignored" and drops it."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)


def _work(steps: int, at: int) -> int:
    done = 0
    for i in range(steps):
        check_interrupt()
        if i == at:
            _CtrlCWhileFreed()  # freed at once
        done += 1
    return done


def test_python_drops_a_ctrl_c_raised_while_an_object_is_freed():
    assert _work(5, at=1) == 5  # the hazard: the loop runs to its end


def test_a_dropped_ctrl_c_stops_the_next_step():
    with pytest.raises(KeyboardInterrupt), catch_interrupts():
        _work(5, at=1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    check_interrupt()  # nothing pending afterwards


def test_a_dropped_ctrl_c_at_the_last_step_raises_at_the_end_of_the_block():
    with pytest.raises(KeyboardInterrupt), catch_interrupts():
        _CtrlCWhileFreed()


def test_an_ordinary_ctrl_c_and_no_ctrl_c():
    with pytest.raises(KeyboardInterrupt), catch_interrupts():
        signal.raise_signal(signal.SIGINT)
    with catch_interrupts():
        assert _work(3, at=-1) == 3


def test_an_interruptible_main_exits_130_with_one_line(capsys):
    @interruptible("evdet-x")
    def main(at: int) -> int:
        _work(5, at=at)
        return 0

    assert main(2) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == ("evdet-x: interrupted; the outputs finished so far are kept, none is "
                                       "half-written\n")
    assert main(-1) == 0


def test_ignored_or_foreign_handlers_are_left_alone():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job of a script
    try:
        with catch_interrupts():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
