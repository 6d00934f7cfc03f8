"""The registration service without a real DNS server: off by default, light, bounded stop.

The flows against real servers are in tests/interop/test_registration_*.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import struct
import subprocess
import sys

import dns.message
import dns.opcode
import dns.rcode
import dns.tsig
import pytest

from responder.config import Config, load_config
from responder.services import registration
from responder.services.registration import RegistrationService
from tests.helpers import BASE_CONFIG, REPO, run_on

SECRET = base64.b64encode(b"r" * 32).decode()
SILENT = "127.0.0.57"  # a TCP listener that never accepts: every exchange hangs
FAKE = "127.0.0.59"  # a scripted server (below)
KEY = dns.tsig.Key("k", SECRET, dns.tsig.HMAC_SHA256)


def with_registration(write_config, server: str = SILENT) -> Config:
    text = BASE_CONFIG + (
        f'[registration.dns]\nserver = "{server}"\ntsig_name = "k"\ntsig_secret = "{SECRET}"\n'
    )
    return load_config(str(write_config(text)))


def test_the_daemon_does_not_load_dnspython_without_registration():
    code = (
        "import asyncio, sys, responder.cli\n"
        "from responder.config import load_config\n"
        "from responder.services.registration import RegistrationService\n"
        "async def main():\n"
        "    service = RegistrationService(asyncio.get_running_loop())\n"
        "    await service.apply(load_config(None), 1)\n"
        "    await service.stop()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m == 'dns' or m.startswith('dns.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_off_without_the_section(loop_kind, write_config):
    config = load_config(str(write_config()))

    async def scenario() -> None:
        service = RegistrationService(asyncio.get_running_loop())
        await service.apply(config, 1)
        assert service.status() == {"enabled": False} and service.registrar is None
        await service.stop()

    run_on(loop_kind, scenario)


def test_stop_is_bounded_and_names_what_was_not_withdrawn(
    loop_kind, write_config, caplog, monkeypatch
):
    config = with_registration(write_config)
    monkeypatch.setattr(registration, "STOP_BUDGET", 0.3)
    caplog.set_level(logging.INFO, "responder.services.registration")

    async def scenario() -> None:
        with socket.socket() as silent:
            silent.bind((SILENT, 53))
            silent.listen(16)
            service = RegistrationService(asyncio.get_running_loop())
            await service.apply(config, 1)
            await asyncio.sleep(0.1)  # the queries are out, and never answered
            status = service.status()
            assert status["enabled"] and {r["state"] for r in status["records"]} == {"pending"}
            await service.stop()
            assert service.registrar is not None and service.registrar.finished() is False

    run_on(loop_kind, scenario)
    (line,) = [r.getMessage() for r in caplog.records if "stopping without" in r.getMessage()]
    assert "sql01-cz1.corp.example (corp.example)" in line
    assert "11.0.0.127.in-addr.arpa (0.0.127.in-addr.arpa)" in line


def test_status_shape(loop_kind, write_config):
    config = with_registration(write_config, server="127.0.0.58")  # nothing listens: refused

    async def scenario() -> None:
        service = RegistrationService(asyncio.get_running_loop())
        await service.apply(config, 1)
        for _ in range(100):
            if service.registrar and service.registrar.counts["UNREACHABLE"] >= 4:
                break
            await asyncio.sleep(0.02)
        status = service.status()
        await service.stop()
        assert status["conflict_mode"] == "check-with-dhcid"
        assert status["key"] == "k. (hmac-sha256)"
        assert status["servers"] == {
            "corp.example": "127.0.0.58:53",
            "0.0.127.in-addr.arpa": "127.0.0.58:53",
        }
        record = status["records"][0]
        assert record["name"] == "sql01-cz1.corp.example" and record["zone"] == "corp.example"
        assert record["state"] == "error" and record["last_outcome"] == "UNREACHABLE"
        assert record["records"] == ["A 127.0.0.11", "DHCID"] and record["failures"] >= 1
        assert record["next_attempt"].endswith("Z") and record["conflict_with"] is None

    run_on(loop_kind, scenario)


def test_it_runs_last_and_only_in_worker_zero():
    from responder.app import make_services

    loop = asyncio.new_event_loop()
    try:
        services = make_services(loop)
    finally:
        loop.close()
    assert services[-1].name == "registration" and services[-1].per_worker is False


# ---------------------------------------------------------------- a scripted server


class FakeServer:
    """Answers queries NXDOMAIN and every UPDATE as ``behaviour`` says, over TCP."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeServer:
        self.server = await asyncio.start_server(self._serve, FAKE, 53)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            request = dns.message.from_wire(await reader.readexactly(length), keyring=KEY)
            answer = self._answer(request)
            if answer is None:
                await asyncio.sleep(1.0)  # holds the connection, answers nothing
            else:
                wire = answer.to_wire()
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        finally:
            writer.close()

    def _answer(self, request: dns.message.Message) -> dns.message.Message | None:
        response = dns.message.make_response(request)
        if request.opcode() != dns.opcode.UPDATE:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif self.behaviour == "silent":
            return None
        elif self.behaviour == "unsigned":
            response.tsig, response.keyring = None, None
        elif self.behaviour == "badly signed":
            response.use_tsig(dns.tsig.Key("k", base64.b64encode(b"x" * 32), "hmac-sha256"))
        else:
            response.set_rcode(dns.rcode.from_text(self.behaviour))
        return response


@pytest.mark.parametrize(
    ("behaviour", "outcome", "reason"),
    [
        ("REFUSED", "REFUSED", "update-policy / ACL grant k. these names and types"),
        ("NOTAUTH", "NOTAUTH", "not authoritative for the zone, or refused k."),
        ("NOTZONE", "NOTZONE", "the name is not in the zone"),
        ("SERVFAIL", "SERVFAIL", "the server failed to process it"),
        ("unsigned", "UNSIGNED_RESPONSE", "carries no TSIG, so it is not trusted"),
        ("badly signed", "BAD_RESPONSE_SIGNATURE", "failed TSIG verification"),
        ("silent", "TIMEOUT", "no answer in time"),
        ("YXRRSET", "CONFLICT", "add refused twice with YXRRSET"),
    ],
)
def test_each_server_failure_is_one_clear_line_and_counted(
    write_config, caplog, monkeypatch, behaviour, outcome, reason
):
    config = with_registration(write_config, server=FAKE)
    monkeypatch.setattr(registration, "EXCHANGE_TIMEOUT", 0.2)
    caplog.set_level(logging.INFO, "responder.services.registration")

    def lines() -> list[str]:
        return [
            r.getMessage() for r in caplog.records if "sql01-cz1.corp.example (" in r.getMessage()
        ]

    async def scenario() -> None:
        async with FakeServer(behaviour):
            service = RegistrationService(asyncio.get_running_loop())
            await service.apply(config, 1)
            for _ in range(200):
                if lines():
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # a retry or two: still the one line
            assert service.registrar is not None and service.registrar.counts[outcome] >= 1
            service.settings = None  # stop without withdrawing from the scripted server
            await service.stop()

    run_on("asyncio", scenario)
    (line,) = lines()
    assert line.startswith(
        "registration: zone corp.example via 127.0.0.59:53: sql01-cz1.corp.example "
        "(A 127.0.0.11, DHCID): "
    )
    assert outcome in line or outcome == "CONFLICT"
    assert reason in line
