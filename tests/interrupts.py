"""Interrupting a call under test once the requests it sent have reached a proxy.

``interrupted_when`` runs the block while a watcher thread waits (polling with
a deadline, never a bare sleep) for a condition, then interrupts the main
thread: a real SIGINT, as Ctrl-C delivers it, or ``_thread.interrupt_main()``,
as a stop button or a watchdog thread does (no signal: it wakes no blocked
wait). The block must end in KeyboardInterrupt, and the watcher's own failure
(its condition never held) fails the test.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

__all__ = ["Interrupted", "interrupted_when", "wait_for"]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Return once ``condition()`` is true; fail after ``timeout`` seconds, naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


@dataclass
class Interrupted:
    """How long the interrupted block ran (set when it has ended)."""

    seconds: float = 0.0


@contextlib.contextmanager
def interrupted_when(
    condition: Callable[[], object], what: str, *, real_signal: bool = False
) -> Iterator[Interrupted]:
    """Interrupt the block once ``condition()`` holds; it must raise KeyboardInterrupt.

    ``real_signal``: a SIGINT to the main thread (Ctrl-C); else ``_thread.interrupt_main()``.
    """
    errors: list[BaseException] = []

    def interrupt() -> None:
        try:
            wait_for(condition, what)
            if real_signal:
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            else:
                _thread.interrupt_main()
        except BaseException as exc:  # collected: asserted below
            errors.append(exc)

    timing = Interrupted()
    watcher = threading.Thread(target=interrupt)
    watcher.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            yield timing
    finally:
        timing.seconds = time.monotonic() - started
        watcher.join(timeout=30)
    assert not errors, errors
