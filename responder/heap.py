"""Keeping the cyclic garbage collector's full passes off the answer path.

CPython's full (generation 2) collection walks every container object the
process holds, with the GIL held. A 1,000-node daemon holds about 150,000 of
them (answer tables, NetBIOS names, listeners, their handles), so one full
pass stops every answer for about 30 ms, and the allocations of a reload
trigger several. Those objects live until the next reload, and none of them
ends as cyclic garbage: freed by reference counting when a reload replaces
them (tests/responder/test_heap.py reloads back and forth and counts).

So, as servers that fork or keep large tables do (Python's ``gc.freeze``
documentation), :func:`building` wraps the start and each reload: no
collection while the new tables are built, then everything alive is frozen
(moved out of the collector's sight) before collections resume. Full passes
afterwards walk only what was allocated since, which stays small.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def building() -> Iterator[None]:
    """No collections while a config is built; what is alive after it, frozen."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
