"""``probe`` and ``audit`` as commands, against the real daemon and against silence.

The commands run as subprocesses (``python -m responder``), like an operator
runs them; the daemon is the start_daemon fixture's. Time only bounds a hang.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from responder.cli import main
from tests.helpers import BASE_CONFIG, PATIENCE, REPO

PROTOCOL_FIELDS = {
    "dns": {"server", "reverse_name", "rcode", "ptr", "forward", "points_back"},
    "nbns": {"names", "mac", "query"},
    "nbss": {"called"},
    "smb2": {"negotiations", "server_guid"},
    "ntlm": {"nb_computer_name", "nb_domain_name", "dns_computer_name", "dns_domain_name",
             "dns_tree_name", "os_version"},
    "smb1": {"dialect", "server_name", "domain_name", "native_os", "native_lanman"},
}  # fmt: skip


def cozen(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "responder", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )


@pytest.fixture
def daemon(write_config, start_daemon):
    return start_daemon(write_config(BASE_CONFIG))


def test_probe_expect_own_name_exits_0(daemon):
    done = cozen("probe", "127.0.0.12", "--expect", "SQL01-CZ2", "--dns-server", "127.0.0.10")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [
        r"PTR 12.0.0.127.in-addr.arpa +sql01-cz2.corp.example",
        r"A sql01-cz2.corp.example +127.0.0.12 \(points back\)",
        r"SQL01-CZ2<20> +unique B ACT",
        r"called SQL01-CZ2<20> +accepted",
        r"\{2.0.2, 2.1, 3.0, 3.0.2, 3.1.1\} +3.1.1",
        r"NetBIOS computer +SQL01-CZ2",
        r"native OS +Windows Server 2022",
        r"agree +every answering protocol presents SQL01-CZ2",
    ]
    for row in rows:
        assert re.search(row, done.stdout), (row, done.stdout)
    assert done.stderr == ""


def test_probe_with_system_resolver_exits_0(daemon):
    """As the README runs it: the namespace's resolver is unreachable, so DNS is silent."""
    done = cozen("probe", "127.0.0.12", "--expect", "SQL01-CZ2", "--timeout", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search("NetBIOS computer +SQL01-CZ2", done.stdout)


def test_probe_expect_public_name_exits_1_naming_every_protocol(daemon):
    done = cozen("probe", "127.0.0.12", "--expect", "SQL01", "--dns-server", "127.0.0.10")
    assert done.returncode == 1
    assert "dns, nbns, nbss, ntlm, smb1 present a name other than SQL01" in done.stderr
    for protocol in ("dns", "nbns", "nbss", "ntlm", "smb1"):
        assert re.search(f"{protocol} +presents SQL01-CZ2, not SQL01", done.stdout), done.stdout


def test_probe_json_carries_every_field(daemon):
    done = cozen("probe", "127.0.0.12", "127.0.0.11", "--json", "--dns-server", "127.0.0.10",
                 "--public-name", "SQL01", "--expect", "SQL01-CZ2")  # fmt: skip
    assert done.returncode == 1  # 127.0.0.11 is SQL01-CZ1
    assert done.stderr.count("present a name other than") == 1  # no progress: not a TTY
    first, second = json.loads(done.stdout)["results"]
    assert (first["address"], second["address"]) == ("127.0.0.12", "127.0.0.11")
    for protocol, fields in PROTOCOL_FIELDS.items():
        assert first[protocol]["status"] == "answered", first[protocol]
        assert fields <= set(first[protocol]), protocol
    assert first["dns"]["ptr"] == ["sql01-cz2.corp.example"] and first["dns"]["points_back"]
    assert {n["name"] for n in first["nbns"]["names"]} == {"SQL01-CZ2", "CORP"}
    assert first["nbns"]["query"]["addresses"] == ["127.0.0.12"]
    called = {c["name"]: c["accepted"] for c in first["nbss"]["called"]}
    assert called == {"SQL01-CZ2": True, "*SMBSERVER": True, "SQL01": False}
    dialects = [n["dialect"] for n in first["smb2"]["negotiations"]]
    assert dialects == ["2.0.2", "3.0.2", "3.1.1"]
    negotiation = first["smb2"]["negotiations"][0]
    assert negotiation["security_mode"] == ["SIGNING_ENABLED"]
    assert isinstance(negotiation["skew_seconds"], float) and negotiation["system_time"]
    assert first["ntlm"]["dns_computer_name"] == "sql01-cz2.corp.example"
    assert first["smb1"]["native_os"] == "Windows Server 2022 Standard 20348"
    assert (first["mismatched"], second["mismatched"]) == (
        [],
        ["dns", "nbns", "nbss", "ntlm", "smb1"],
    )


@pytest.fixture
def black_hole() -> Iterator[str]:
    """127.0.0.98: DNS and NBNS ports bound but mute, 139 and 445 accepting but mute."""
    host = "127.0.0.98"
    sockets = []
    for port in (53, 137):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((host, port))
        sockets.append(udp)
    for port in (139, 445):
        sockets.append(socket.create_server((host, port)))
    try:
        yield host
    finally:
        for sock in sockets:
            sock.close()


def test_closed_ports_are_silent():
    done = cozen("probe", "127.0.0.99", "--json", "--timeout", "0.5", "--expect", "SQL01-CZ2",
                 "--dns-server", "127.0.0.99")  # fmt: skip
    assert done.returncode == 0, done.stderr  # silence is not a different name
    result = json.loads(done.stdout)["results"][0]
    for protocol in PROTOCOL_FIELDS:
        assert result[protocol]["status"] == "silent", result[protocol]
    assert result["smb2"]["detail"] == "connection refused"
    assert result["nbns"]["detail"] == "port unreachable"
    assert result["silent"] == list(PROTOCOL_FIELDS) and result["mismatched"] == []


def test_mute_host_is_silent_within_the_timeout(black_hole):
    done = cozen("probe", black_hole, "--json", "--timeout", "0.3", "--dns-server", black_hole)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["results"][0]
    for protocol in PROTOCOL_FIELDS:
        assert result[protocol]["status"] == "silent", result[protocol]
        assert result[protocol]["detail"] == "no answer within 0.3 s", result[protocol]


@pytest.mark.parametrize(
    "argv",
    [["probe"], ["probe", "not-an-address"], ["probe", "127.0.0.1", "--timeout", "0"],
     ["probe", "127.0.0.1", "--dns-server", "127.0.0.1:99999"],
     ["audit", "--public", "nowhere"]],
)  # fmt: skip
def test_usage_errors_exit_2(argv):
    done = cozen(*argv)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""


# -- audit ------------------------------------------------------------------------------


def test_audit_of_the_embedded_config_passes(daemon):
    done = cozen("audit")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "audit: pass"
    data = json.loads(cozen("audit", "--json").stdout)
    assert data["ok"] is True
    assert [n["node"] for n in data["nodes"]] == ["SQL01-CZ1", "SQL01-CZ2"]


GUID = "0f0e0d0c-0b0a-4908-8706-050403020100"
MAC = "02:00:5e:10:00:99"


def twin(name: str, address: str, dns: str) -> str:
    """A one-node config that gives ``name`` the ServerGuid and MAC its twin also has."""
    return f"""\
[cluster]
name = "SQL01"
dns_domain = "corp.example"
workgroup = "CORP"

[dns]
listen = ["{dns}"]

[netbios]
broadcast = false

[[node]]
cozen_name = "{name}"
management_ip = "{address}"
server_guid = "{GUID}"
mac = "{MAC}"
"""


def test_audit_marks_nodes_sharing_a_server_guid_and_mac(write_config, start_daemon):
    """Two daemons, each valid alone, give two nodes one ServerGuid and MAC: the wire shows it."""
    start_daemon(write_config(twin("SQL01-CZ1", "127.0.0.11", "127.0.0.10")))
    start_daemon(write_config(twin("SQL01-CZ2", "127.0.0.12", "127.0.0.20")))
    done = cozen("audit", "--config", str(write_config(BASE_CONFIG)), "--json")
    assert done.returncode == 1, done.stderr
    cz1, cz2 = json.loads(done.stdout)["nodes"]
    assert cz1["checks"]["unique"]["reasons"] == [
        f"shares ServerGuid {GUID} with SQL01-CZ2",
        f"shares MAC {MAC} with SQL01-CZ2",
    ]
    assert cz2["checks"]["unique"]["reasons"][0] == f"shares ServerGuid {GUID} with SQL01-CZ1"
    assert cz1["checks"]["smb2"]["ok"] is False and cz2["checks"]["nbns"]["ok"] is False
    assert cz1["checks"]["ntlm"]["ok"] is True  # the names themselves are right
    table = cozen("audit", "--config", str(write_config(BASE_CONFIG)))
    assert table.returncode == 1
    assert f"FAIL shares ServerGuid {GUID} with SQL01-CZ2" in table.stdout
    assert table.stdout.splitlines()[-1] == "audit: FAIL"


def test_progress_on_stderr_only_when_it_is_a_terminal(monkeypatch, capsys):
    argv = ["probe", "127.0.0.96", "127.0.0.97", "--timeout", "0.2", "--dns-server", "127.0.0.96"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(argv) == 0
    assert capsys.readouterr().err == "\rprobed 1/2\rprobed 2/2\n"


def test_names_that_are_no_netbios_names_are_not_called(daemon):
    done = cozen("probe", "127.0.0.12", "--json", "--timeout", "1", "--expect", "名前",
                 "--public-name", "")  # fmt: skip
    assert done.returncode == 2  # an empty name is bad usage
    done = cozen("probe", "127.0.0.12", "--json", "--timeout", "1", "--expect", "名前")
    assert done.returncode == 1, done.stderr  # every name presented differs from it
    called = [c["name"] for c in json.loads(done.stdout)["results"][0]["nbss"]["called"]]
    assert called == ["SQL01-CZ2", "*SMBSERVER"]
