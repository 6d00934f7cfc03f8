"""DnsService.apply: answers are in place before any new socket serves, and restored on failure."""

from __future__ import annotations

import asyncio
import socket

import pytest

from responder.config import load_config
from responder.net.listeners import BindError
from responder.services.dns import DnsService
from tests.helpers import BASE_CONFIG, run_on


def test_answers_are_set_before_sockets_are_bound(loop_kind, write_config):
    config = load_config(str(write_config()))

    async def scenario() -> None:
        service = DnsService(asyncio.get_running_loop())
        seen = []
        real_open = service._open_udp

        async def spying_open(endpoint):
            seen.append(service.answers)
            return await real_open(endpoint)

        service.udp._open_one = spying_open
        try:
            await service.apply(config, 1)
        finally:
            await service.stop()
        assert seen and all(answers is not None for answers in seen)

    run_on(loop_kind, scenario)


def test_failed_bind_restores_previous_answers(loop_kind, write_config):
    first = load_config(str(write_config()))
    second = load_config(
        str(write_config(BASE_CONFIG.replace('"127.0.0.10"', '"127.0.0.10", "127.0.0.31"')))
    )

    async def scenario() -> None:
        service = DnsService(asyncio.get_running_loop())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
            blocker.bind(("127.0.0.31", 53))
            try:
                await service.apply(first, 1)
                before = service.answers
                with pytest.raises(BindError):
                    await service.apply(second, 2)
                assert service.answers is before
                assert list(service.udp.active) == [("127.0.0.10", 53)]
            finally:
                await service.stop()

    run_on(loop_kind, scenario)
