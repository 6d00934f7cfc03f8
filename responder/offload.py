"""Heavy pure work off the event loop, so that serving goes on meanwhile.

A reload of 1,000 nodes means parsing the file, deriving every node's
identity and compiling the DNS answer table: a few hundred milliseconds of
CPU that, on the loop, would hold every answer back. :func:`off_loop` runs
such a function in the loop's default thread pool. That is safe because the
work is pure: the codecs in ``protocols/`` and the derivations in
``responder.identity`` build new immutable objects from immutable inputs,
and the result is swapped in by the loop in one assignment.

The GIL still lets only one thread run Python at a time, and by default it
changes hands every 5 ms; while work is off the loop the switch interval
is :data:`SWITCH_INTERVAL`, so the loop waits at most that long for its
turn, and the default comes back when the last piece of work is done.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005

_running = 0
_saved_interval = sys.getswitchinterval()


async def off_loop(work: Callable[[], T]) -> T:
    """The result of ``work()``, computed in a thread while the loop keeps serving.

    Raises:
        Exception: whatever ``work`` raises.
    """
    global _running, _saved_interval
    if _running == 0:
        _saved_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
    _running += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(None, work)
    finally:
        _running -= 1
        if _running == 0:
            sys.setswitchinterval(_saved_interval)
