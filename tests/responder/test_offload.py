"""Work off the event loop: the result comes back, errors too, and the GIL interval is restored."""

from __future__ import annotations

import sys
import threading

import pytest

from responder.offload import SWITCH_INTERVAL, off_loop
from tests.helpers import run_on


def test_work_runs_in_another_thread_with_a_short_switch_interval(loop_kind):
    seen = {}

    def work() -> int:
        seen["thread"] = threading.current_thread()
        seen["interval"] = sys.getswitchinterval()
        return 42

    async def scenario() -> None:
        before = sys.getswitchinterval()
        assert await off_loop(work) == 42
        assert seen["thread"] is not threading.current_thread()
        assert seen["interval"] == pytest.approx(SWITCH_INTERVAL)
        assert sys.getswitchinterval() == before

    run_on(loop_kind, scenario)


def test_an_error_comes_back_and_the_interval_is_restored(loop_kind):
    def work() -> None:
        raise ValueError("bad config")

    async def scenario() -> None:
        before = sys.getswitchinterval()
        with pytest.raises(ValueError, match="bad config"):
            await off_loop(work)
        assert sys.getswitchinterval() == before

    run_on(loop_kind, scenario)
