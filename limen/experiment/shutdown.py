"""Clean shutdown of a running experiment on SIGINT/SIGTERM or on request.

The first signal asks the loop to stop after the running round; if that round is still
running ``grace`` seconds later, it is interrupted (recorded as an attempt and re-queued). A
second signal interrupts at once. Signal handlers exist only in the main thread: a loop run
from another thread is stopped with ``UniversalExperimentLoop.request_stop()``.
"""

from __future__ import annotations

import _thread
import logging
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["SHUTDOWN_GRACE_S", "SIGNALS", "Shutdown"]

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 60.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Shutdown:
    """The stop request of one loop, shared by signal handlers and ``request_stop``."""

    def __init__(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        self.grace = grace
        self.requested = threading.Event()
        self._previous: dict[int, Any] = {}
        self._timer: threading.Timer | None = None

    def install(self) -> None:
        """Start listening for SIGINT/SIGTERM (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """Put the previous handlers back, cancel a pending interruption, clear the request."""
        self.requested.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def request(self) -> None:
        """Stop after the running round (thread-safe)."""
        self.requested.set()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested.is_set():
            raise KeyboardInterrupt
        self.requested.set()
        logger.warning(
            "%s received: finishing the running round, then stopping (a second signal, or %ss "
            "without the round ending, interrupts it).",
            signal.Signals(signum).name,
            self.grace,
        )
        self._timer = threading.Timer(self.grace, _thread.interrupt_main)
        self._timer.daemon = True
        self._timer.start()
