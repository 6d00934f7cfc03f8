"""The monitoring endpoint: the sans-IO session, and the daemon's /healthz, /status, /metrics."""

from __future__ import annotations

import json
import urllib.request

import dns.message
import dns.query
import pytest

from responder.config import ConfigError, load_config
from responder.services.health import HealthSession, metrics_text
from tests.helpers import BASE_CONFIG

HEALTH = "127.0.0.1:9137"
CONFIG = BASE_CONFIG + f'\n[health]\nlisten = "{HEALTH}"\n'


def ask(request: bytes, report=None) -> tuple[bytes, HealthSession]:
    session = HealthSession(report or (lambda: {"dns": {"fast_path": True}}))
    return session.receive_data(request), session


def test_healthz():
    reply, session = ask(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\nok\n")
    assert session.closed


def test_request_split_across_segments():
    session = HealthSession(lambda: {})
    assert session.receive_data(b"GET /heal") == b""
    assert not session.closed
    assert session.receive_data(b"thz HTTP/1.0\r\n\r\n").endswith(b"ok\n")


def test_status_is_json_of_the_report():
    reply, _ = ask(b"GET /status HTTP/1.1\r\n\r\n", lambda: {"a": {"b": [1, 2]}})
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == {"a": {"b": [1, 2]}}


def test_reject_unknown_path_and_method_and_oversize():
    assert ask(b"GET /nope HTTP/1.1\r\n\r\n")[0].startswith(b"HTTP/1.1 404")
    assert ask(b"POST /status HTTP/1.1\r\n\r\n")[0].startswith(b"HTTP/1.1 400")
    assert ask(b"garbage\r\n\r\n")[0].startswith(b"HTTP/1.1 400")
    reply, session = ask(b"G" * 9000)
    assert reply.startswith(b"HTTP/1.1 431") and session.closed


def test_metrics_flatten_numbers_with_address_labels():
    text = metrics_text(
        {
            "reloads": 2,
            "dns": {"fast_path": True, "udp": [{"address": "127.0.0.10:53", "received": 5}]},
            "config": "x",
        }
    )
    assert text.splitlines() == [
        "cozen_reloads 2",
        "cozen_dns_fast_path 1",
        'cozen_dns_udp_received{address="127.0.0.10:53"} 5',
    ]


def test_bad_health_listen_is_a_config_error(write_config):
    with pytest.raises(ConfigError, match=r"health\.listen: 'nowhere' must be ADDRESS:PORT"):
        load_config(str(write_config(BASE_CONFIG + '[health]\nlisten = "nowhere"\n')))


def get(path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://{HEALTH}{path}", timeout=3) as response:
        return response.status, response.read().decode()


@pytest.mark.parametrize("udp_loop", ["compiled", "python"])
def test_daemon_serves_health_status_and_metrics(write_config, start_daemon, udp_loop):
    switch = {"COZEN_PURE_PYTHON": "1" if udp_loop == "python" else ""}
    daemon = start_daemon(write_config(CONFIG), env=switch)
    assert f"ready ({udp_loop} UDP loop)" in daemon.log()
    query = dns.message.make_query("sql01-cz1.corp.example", "A")
    for _ in range(3):  # the repeats are answered from the memo (in C, on the compiled loop)
        dns.query.udp(query, "127.0.0.10", timeout=2)
    assert get("/healthz") == (200, "ok\n")
    status = json.loads(get("/status")[1])
    assert status["udp_loop"] == udp_loop
    assert [n["name"] for n in status["nodes"]] == ["SQL01-CZ1", "SQL01-CZ2"]
    assert status["dns"]["udp"][0]["address"] == "127.0.0.10:53"
    assert status["dns"]["udp"][0]["answered"] == status["dns"]["udp"][0]["received"] == 3
    code, metrics = get("/metrics")
    assert code == 200
    assert 'cozen_dns_udp_answered{address="127.0.0.10:53"} ' in metrics
