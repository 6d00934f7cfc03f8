"""Real SMB clients (impacket, smbclient, nmap) against the real daemon on 139/445.

Every test captures its own traffic on lo with tshark and checks that
Wireshark's dissectors find nothing malformed and raise no expert warning or
error about our packets. Tolerated: notes and chats (TCP set-up and
tear-down), and the "Connection reset (RST)" warning when the RST comes from
the client side (nmap's port scan answers our SYN+ACK with an RST); an RST
from port 139 or 445 still fails.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from impacket.smb import SMB_DIALECT
from impacket.smbconnection import SessionError, SMBConnection

from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from tests.helpers import BASE_CONFIG, PATIENCE, REPO, DaemonProcess, end_process
from tests.interop.tshark import Capture, fields, read

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::BytesWarning")]

NODES = {"SQL01-CZ1": "127.0.0.11", "SQL01-CZ2": "127.0.0.12"}
STATUS_LOGON_FAILURE = 0xC000006D


SMB_PORTS = "tcp port 445 or tcp port 139"


def check_capture(cap: Capture, *, min_packets: int = 1) -> None:
    """Stop capturing; assert our packets dissect cleanly (see module docstring)."""
    cap.stop()
    assert len(fields(cap.path, "smb || smb2 || nbss", "frame.number")) >= min_packets
    names = ["frame.number", "tcp.srcport", "tcp.flags.reset", "_ws.expert.message"]
    flagged = fields(cap.path, f"_ws.malformed || {_WARNING_OR_WORSE}", *names)
    ours = [row for row in flagged if not _client_reset(row)]
    assert ours == [], read(cap.path, "-q", "-z", "expert")
    assert "Malformed" not in read(cap.path, "-V")


_WARNING_OR_WORSE = "_ws.expert.severity >= 0x600000"


def _client_reset(row: list[str]) -> bool:
    """A TCP RST sent by a client (nmap's SYN probe, a client aborting): not ours."""
    return len(row) >= 3 and row[2] in ("1", "True") and row[1] not in ("139", "445")


def run(argv: list[str], timeout: float = 30, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )  # type: ignore[call-overload,no-any-return]


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[Capture]:
    with Capture("lo", tmp_path / "smb.pcapng", SMB_PORTS) as cap:
        yield cap


@pytest.fixture
def daemon(write_config, start_daemon) -> DaemonProcess:
    return start_daemon(write_config(BASE_CONFIG))


def server_guid(host: str) -> bytes:
    client = SMBConnection(host, host, timeout=5)
    try:
        return bytes(client.getSMBServer()._Connection["ServerGuid"])
    finally:
        client.close()


@pytest.mark.parametrize("dialect", [None, SMB_DIALECT], ids=["smb2", "smb1"])
def test_impacket_reads_each_node_identity(daemon, capture, dialect):
    for name, host in NODES.items():
        kwargs = {} if dialect is None else {"preferredDialect": dialect}
        client = SMBConnection(name, host, timeout=5, **kwargs)
        with pytest.raises(SessionError) as info:
            client.login("someone", "wrong", "CORP")
        assert info.value.getErrorCode() == STATUS_LOGON_FAILURE
        assert client.getServerName() == name
        assert client.getServerDomain() == "CORP"
        assert client.getServerDNSHostName() == f"{name.lower()}.corp.example"
        assert client.getServerDNSDomainName() == "corp.example"
        assert "20348" in client.getServerOS()
        client.close()
    check_capture(capture, min_packets=8)


def test_server_guids_differ_and_survive_restart(write_config, start_daemon, capture):
    path = write_config(BASE_CONFIG)
    first = start_daemon(path)
    before = {host: server_guid(host) for host in NODES.values()}
    assert first.stop() == 0
    start_daemon(path)
    after = {host: server_guid(host) for host in NODES.values()}
    assert before == after
    assert len(set(before.values())) == 2
    check_capture(capture, min_packets=4)


def smbclient(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "smb.conf"
    conf.write_text("[global]\n  client min protocol = NT1\n")
    return run(["smbclient", "-s", str(conf), "-N", *args], timeout=PATIENCE, cwd=tmp_path)


@pytest.mark.parametrize("protocol", [(), ("-m", "NT1"), ("-m", "SMB3")], ids=str)
def test_smbclient_list_ends_cleanly(write_config, start_daemon, capture, tmp_path, protocol):
    # No clock here: with the server's idle timeout at its maximum, an exchange that left
    # smbclient waiting could end only in its own timeout error or run()'s hang guard, never in
    # the clean result below (the server's doing, not its idle timer's).
    start_daemon(write_config(BASE_CONFIG + "[smb]\nidle_timeout = 3600\n"))
    result = smbclient(tmp_path, "-L", "//127.0.0.11", *protocol)
    output = result.stdout + result.stderr
    assert "Anonymous login successful" in output
    assert "NT_STATUS_ACCESS_DENIED" in output
    assert "signature" not in output.lower()
    assert result.returncode == 1
    check_capture(capture, min_packets=6)


def test_netbios_session_accepts_cozen_name_refuses_public_name(daemon, capture, tmp_path):
    result = smbclient(tmp_path, "-L", "//SQL01-CZ1", "-I", "127.0.0.11", "-p", "139")
    assert "Anonymous login successful" in result.stdout + result.stderr
    answers = {"SQL01-CZ1": b"\x82\x00\x00\x00", "SQL01": b"\x83\x00\x00\x01\x82"}
    for called, expected in answers.items():
        with socket.create_connection(("127.0.0.11", 139), timeout=5) as sock:
            request = nbss.SessionRequest(NetbiosName(called, 0x20), NetbiosName("PROBE", 0))
            sock.sendall(nbss.encode_session_request(request))
            assert sock.recv(16) == expected
    check_capture(capture, min_packets=6)


NMAP_SCRIPTS = "smb-os-discovery,smb-protocols,smb2-capabilities,smb2-time"


def nmap(host: str, scripts: str) -> str:
    argv = ["nmap", "-n", "-Pn", "--host-timeout", "30s", "-p445", "--script", scripts]
    result = run([*argv, "-oX", "-", host], timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def element(xml: str, key: str) -> str:
    found = re.search(rf'<elem key="{key}">([^<]*)</elem>', xml)
    assert found is not None, f"no {key} in {xml}"
    return found.group(1)


def test_nmap_reads_identity_dialects_and_time(daemon, capture):
    xml = nmap("127.0.0.12", NMAP_SCRIPTS)
    # nmap keeps the SMB1 negotiate's NUL terminators in server and workgroup (as with Windows).
    assert element(xml, "server").removesuffix("\\x00") == "SQL01-CZ2"
    assert element(xml, "workgroup").removesuffix("\\x00") == "CORP"
    assert element(xml, "fqdn") == "sql01-cz2.corp.example"
    assert element(xml, "os") == "Windows Server 2022 Standard 20348"
    for dialect in ("NT LM 0.12 (SMBv1) [dangerous, but default]", "202", "210", "300", "302"):
        assert f"<elem>{dialect}</elem>" in xml
    assert "<elem>311</elem>" in xml
    assert re.search(r'<elem key="date">\d{4}-\d\d-\d\dT', xml)
    # ServerStartTime 0, as Windows 10 / Server 2016 and later send it: nmap prints N/A
    assert element(xml, "start_date") == "N/A"
    assert "SQL01-CZ1" not in xml
    check_capture(capture, min_packets=20)


def test_default_config_done_when(capture, tmp_path):
    """``python -m responder run`` without --config: nmap names SQL01-CZ2 at 127.0.0.12."""
    stderr_path = tmp_path / "daemon.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "responder", "run"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        wait_ready(stderr_path, proc)
        result = run(
            ["nmap", "-n", "-Pn", "--host-timeout", "30s", "-p445", "--script",
             "smb-os-discovery", "127.0.0.12"],
            timeout=60,
        )  # fmt: skip
        assert "NetBIOS computer name: SQL01-CZ2" in result.stdout, result.stdout
        assert "FQDN: sql01-cz2.corp.example" in result.stdout, result.stdout
    finally:
        end_process(proc)
    check_capture(capture, min_packets=10)


def wait_ready(stderr_path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while "ready" not in stderr_path.read_text(errors="replace"):
        assert proc.poll() is None, stderr_path.read_text(errors="replace")
        assert time.monotonic() < deadline, "daemon not ready"
        time.sleep(0.05)


def test_capture_helper_flags_malformed(tmp_path: Path) -> None:
    """The tshark check itself must notice a malformed SMB2 packet."""
    cap = Capture("lo", tmp_path / "smb.pcapng", SMB_PORTS)
    server = socket.create_server(("127.0.0.13", 445))
    try:
        client = socket.create_connection(("127.0.0.13", 445), timeout=5)
        peer, _ = server.accept()
        with client, peer:
            client.sendall(b"\x00\x00\x00\x44\xfeSMB\x40\x00" + bytes(58) + b"\x24\x00\x05\x00")
            peer.recv(1000)
    finally:
        server.close()
    with pytest.raises(AssertionError, match=r"Malformed|Expert Info|Errors"):
        check_capture(cap)
