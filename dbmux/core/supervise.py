"""Keep a long-running step going: restart it after transient failures, with exponential back-off.

The replicator's runner and the binlog reader both run their pipeline as one *step* that returns when
asked to stop and raises when something fails. :func:`supervise` runs the step again after every
failure :func:`~dbmux.core.transient.is_transient` calls transient (or what ``retry_if`` says),
waiting :class:`Backoff` delays in between (0.5 s, doubled each time, at most 10 s); a wait ends early
when ``stop`` is set. The back-off starts afresh after an attempt that went well for a while
(``fresh_after_s``) or made headway (``progress``). A permanent error propagates to the caller, who
decides what it means (exit code, log line).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from dbmux.core.transient import is_transient

__all__ = ["Backoff", "supervise", "wait_for_stop"]

T = TypeVar("T")


@dataclass
class Backoff:
    """Exponential back-off delays: ``initial_s``, then multiplied by ``factor`` after each one handed
    out, capped at ``max_s``; :meth:`reset` starts from ``initial_s`` again."""

    initial_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0
    _next_s: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ValueError(f"bad back-off: initial_s={self.initial_s}, max_s={self.max_s}, factor={self.factor}")
        self._next_s = self.initial_s

    def next_delay(self) -> float:
        """The delay to wait now; the following one is longer (up to ``max_s``)."""
        delay = self._next_s
        self._next_s = min(delay * self.factor, self.max_s)
        return delay

    def reset(self) -> None:
        """Start from ``initial_s`` again (the step had been running fine)."""
        self._next_s = self.initial_s


async def wait_for_stop(stop: asyncio.Event, delay_s: float) -> bool:
    """Wait ``delay_s`` seconds, or less if ``stop`` is set meanwhile; True when ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), delay_s)
    except TimeoutError:
        pass
    return stop.is_set()


async def supervise(step: Callable[[], Awaitable[T]], *, stop: asyncio.Event,
                    on_retry: Callable[[Exception, float], None],
                    retry_if: Callable[[BaseException], bool] = is_transient,
                    backoff: Backoff | None = None,
                    fresh_after_s: float | None = None,
                    progress: Callable[[], object] | None = None,
                    clock: Callable[[], float] = time.monotonic,
                    wait: Callable[[asyncio.Event, float], Awaitable[bool]] = wait_for_stop) -> T | None:
    """Run ``step()`` until it returns (its result) or ``stop`` is set (None).

    When ``step`` raises an exception ``retry_if`` accepts, ``on_retry(exc, delay_s)`` is called (to log
    it) and ``step`` runs again after ``delay_s`` (the next :class:`Backoff` delay), or not at all if
    ``stop`` is set meanwhile. Any other exception propagates. The back-off is reset first when the
    failed attempt ran longer than ``fresh_after_s`` seconds (by ``clock``), or when ``progress()``
    (e.g. a count of events handled) changed during it. ``wait(stop, delay_s)`` does the waiting
    (tests pass one that does not sleep).
    """
    backoff = backoff if backoff is not None else Backoff()
    while not stop.is_set():
        started = clock()
        before = progress() if progress is not None else None
        try:
            return await step()
        except Exception as exc:  # noqa: BLE001 - classified by retry_if; the rest propagates
            if not retry_if(exc):
                raise
            if ((fresh_after_s is not None and clock() - started > fresh_after_s)
                    or (progress is not None and progress() != before)):
                backoff.reset()
            delay = backoff.next_delay()
            on_retry(exc, delay)
            await wait(stop, delay)
    return None
