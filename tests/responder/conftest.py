"""Fixtures of the in-process daemon tests."""

from __future__ import annotations

import pytest

from tests.helpers import loop_kinds


@pytest.fixture(params=loop_kinds())
def loop_kind(request: pytest.FixtureRequest) -> str:
    """Each in-process test runs once per event loop (uvloop and asyncio by default)."""
    return str(request.param)
