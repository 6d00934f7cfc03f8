"""Run one coroutine now and then every N seconds, on the event loop, until told to stop.

The self-probes and the periodic audit share it: a run that raises is a bug,
logged, and the next run still comes; rescheduling (on every reload) cancels
the pending run and starts again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """``run()`` now and every ``interval`` seconds; ``what`` names it in the log."""

    def __init__(self, run: Callable[[], Awaitable[object]], what: str) -> None:
        self._run = run
        self._what = what
        self._task: asyncio.Task[None] | None = None

    def schedule(self, interval: float) -> None:
        """Run now and then every ``interval`` seconds (0: stop).

        Raises:
            RuntimeError: no running event loop.
        """
        self._cancel()
        if interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._every(interval))

    async def stop(self) -> None:
        task = self._task
        self._cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _every(self, interval: float) -> None:
        while True:
            try:
                await self._run()
            except Exception:  # a bug: report it, keep going
                log.exception("%s failed", self._what)
            await asyncio.sleep(interval)
