"""The registration service without a real DNS server: off by default, light, bounded stop.

The flows against real servers are in tests/interop/test_registration_*.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import subprocess
import sys

from responder.config import Config, load_config
from responder.services import registration
from responder.services.registration import RegistrationService
from tests.helpers import BASE_CONFIG, REPO, run_on

SECRET = base64.b64encode(b"r" * 32).decode()
SILENT = "127.0.0.57"  # a TCP listener that never accepts: every exchange hangs


def with_registration(write_config, server: str = SILENT) -> Config:
    text = BASE_CONFIG + (
        f'[registration.dns]\nserver = "{server}"\ntsig_name = "k"\ntsig_secret = "{SECRET}"\n'
    )
    return load_config(str(write_config(text)))


def test_the_daemon_does_not_load_dnspython_without_registration():
    code = (
        "import sys, responder.cli, responder.app\n"
        "from responder.config import load_config\n"
        "load_config(None)\n"
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
    (line,) = [r.getMessage() for r in caplog.records if "stopping before" in r.getMessage()]
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
