"""``probe`` against real servers, checked against real clients: Samba and Knot.

A Samba stand-in (smbd + nmbd, private smb.conf, NetBIOS name STANDIN, SMB1
on) serves 127.0.0.14 and a Knot (knotd) serves a reverse zone with its PTR
on 127.0.0.54. What ``probe`` reports must agree with ``nmblookup -A``,
``smbclient -L``, impacket (an oracle here, never imported by the daemon)
and ``dig -x``. Then ``audit`` is pointed at a config whose third node's
address is really the stand-in: the cells of that node must fail, saying why.
Every server is started in its own session and ended by its PID.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from impacket.smbconnection import SessionError, SMBConnection

from tests.helpers import BASE_CONFIG, PATIENCE, REPO, end_process
from tests.interop.nbns_tools import client_smb_conf, run
from tests.interop.test_nbns_wins import WINS_IP, wins_conf, wins_lookup
from tests.interop.tshark import Capture, fields, read

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::BytesWarning")]

SAMBA = "127.0.0.14"
KNOT = "127.0.0.54"
DCERPCD = "/usr/libexec/samba/samba-dcerpcd"  # smbclient -L needs its srvsvc
FQDN = "standin.lab.example"


def samba_conf(directory: Path) -> Path:
    dirs = {
        d: directory / "samba" / d for d in ("private", "lock", "state", "cache", "pid", "ncalrpc")
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    conf = directory / "standin.conf"
    conf.write_text(
        "[global]\n"
        "  netbios name = STANDIN\n"
        "  workgroup = LAB\n"
        f"  interfaces = {SAMBA}/8\n"
        "  bind interfaces only = yes\n"
        "  server role = standalone server\n"
        "  smb ports = 445 139\n"
        "  server min protocol = NT1\n"
        "  rpc start on demand helpers = no\n"  # we start samba-dcerpcd, so we can end it
        "  disable netbios = no\n"
        "  load printers = no\n"
        "  disable spoolss = yes\n"
        "  printcap name = /dev/null\n"
        f"  log file = {directory / 'samba' / 'log.%m'}\n"
        f"  private dir = {dirs['private']}\n"
        f"  lock directory = {dirs['lock']}\n"
        f"  state directory = {dirs['state']}\n"
        f"  cache directory = {dirs['cache']}\n"
        f"  pid directory = {dirs['pid']}\n"
        f"  ncalrpc dir = {dirs['ncalrpc']}\n"
    )
    return conf


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until(ready, procs: list[subprocess.Popen[bytes]], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not ready():
        assert all(p.poll() is None for p in procs), f"{what} exited"
        assert time.monotonic() < deadline, f"{what} did not become ready"
        time.sleep(0.2)


def accepts(port: int) -> bool:
    try:
        socket.create_connection((SAMBA, port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def samba(tmp_path: Path) -> Iterator[Path]:
    """smbd, nmbd (and samba-dcerpcd) as STANDIN on 127.0.0.14; yields a client smb.conf."""
    conf = samba_conf(tmp_path)
    daemons = {"smbd": [], "nmbd": [], DCERPCD: ["--libexec-rpcds"]}
    procs = [
        start(
            [path, "--foreground", "--no-process-group", "-s", str(conf), *extra],
            tmp_path / f"{Path(path).name}.out",
        )
        for path, extra in daemons.items()
    ]
    client = client_smb_conf(tmp_path)
    try:
        nbstat = lambda: "STANDIN         <20>" in nmblookup(client)  # noqa: E731
        wait_until(lambda: accepts(445) and accepts(139) and nbstat(), procs, "samba")
        yield client
    finally:
        for proc in procs:
            end_process(proc)


def nmblookup(client: Path) -> str:
    return run(["nmblookup", "-s", str(client), "-A", SAMBA], 10).stdout


KNOT_CONF = """\
server:
    listen: {address}@53
    rundir: "{workdir}"
database:
    storage: "{workdir}"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{workdir}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: lab.example
  - domain: 0.0.127.in-addr.arpa
"""
SOA = (
    "@ 300 IN SOA ns.lab.example. hostmaster.lab.example. 1 3600 600 86400 300\n"
    "@ 300 IN NS ns.lab.example.\n"
)


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[str]:
    """knotd on 127.0.0.54 with standin.lab.example A and its PTR."""
    workdir = tmp_path / "knot"
    workdir.mkdir()
    (workdir / "lab.example.zone").write_text(
        SOA + f"ns 300 IN A {KNOT}\nstandin 300 IN A {SAMBA}\n"
    )
    (workdir / "0.0.127.in-addr.arpa.zone").write_text(SOA + f"14 300 IN PTR {FQDN}.\n")
    conf = workdir / "knot.conf"
    conf.write_text(KNOT_CONF.format(address=KNOT, workdir=workdir))
    proc = start(["knotd", "-c", str(conf)], tmp_path / "knotd.out")
    try:
        wait_until(lambda: FQDN in dig("-x", SAMBA), [proc], "knotd")
        yield KNOT
    finally:
        end_process(proc)


def dig(*argv: str) -> str:
    return run(["dig", f"@{KNOT}", "+short", "+time=1", "+tries=1", *argv], 10).stdout


def probe(*argv: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "responder", "probe", SAMBA, "--json", *argv],
        cwd=REPO, capture_output=True, text=True, timeout=PATIENCE, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["results"][0]


def nbstat_table(output: str) -> tuple[set[tuple[str, int, bool]], str]:
    """(name, suffix, group) rows and the MAC of ``nmblookup -A`` output."""
    rows = re.findall(r"^\s+(\S+)\s+<([0-9a-f]{2})> - (<GROUP> )?", output, re.MULTILINE)
    mac = re.search(r"MAC Address = (\S+)", output)
    assert mac is not None, output
    return {(n, int(s, 16), bool(g)) for n, s, g in rows}, mac.group(1).replace("-", ":").lower()


def impacket_view() -> dict[str, object]:
    client = SMBConnection("*SMBSERVER", SAMBA, timeout=5)
    try:
        with contextlib.suppress(SessionError):  # the CHALLENGE was read either way
            client.login("", "")
        connection = client.getSMBServer()
        return {
            "name": client.getServerName(),
            "domain": client.getServerDomain(),
            "dns": client.getServerDNSHostName(),
            "version": f"{client.getServerOSMajor()}.{client.getServerOSMinor()}."
            f"{client.getServerOSBuild()}",
            "dialect": client.getDialect(),
            "guid": str(uuid.UUID(bytes_le=bytes(connection._Connection["ServerGuid"]))),
        }
    finally:
        client.close()


def test_probe_agrees_with_nmblookup_smbclient_impacket_and_dig(samba, knot, tmp_path):
    seen = probe("--dns-server", knot, "--public-name", "SQL01")
    # NBNS: the same table and MAC as nmblookup -A
    table, mac = nbstat_table(nmblookup(samba))
    assert {(n["name"], n["suffix"], n["group"]) for n in seen["nbns"]["names"]} == table
    assert seen["nbns"]["mac"] == mac
    assert seen["nbns"]["query"]["addresses"] == [SAMBA]
    # SMB2 / NTLM: what impacket reads
    oracle = impacket_view()
    ntlm = seen["ntlm"]
    assert ntlm["nb_computer_name"] == oracle["name"] == "STANDIN"
    assert (oracle["domain"] or oracle["name"]) == ntlm["nb_domain_name"]
    assert ntlm["dns_computer_name"] == oracle["dns"]
    assert ntlm["os_version"] == oracle["version"]
    assert seen["smb2"]["server_guid"] == oracle["guid"]
    assert (
        seen["smb2"]["negotiations"][-1]["dialect"]
        == {0x0311: "3.1.1", 0x0302: "3.0.2"}[oracle["dialect"]]
    )
    # SMB1 and NBSS: what smbclient shows and accepts
    listing = run(["smbclient", "-s", str(samba), "-N", "-L", f"//{SAMBA}"], PATIENCE)
    assert f"IPC Service ({seen['smb1']['native_lanman']})" in listing.stdout
    assert (seen["smb1"]["server_name"], seen["smb1"]["domain_name"]) == ("STANDIN", "LAB")
    called = run(["smbclient", "-s", str(samba), "-N", "-L", "//STANDIN", "-I", SAMBA, "-p", "139"])
    assert "Anonymous login successful" in called.stdout + called.stderr
    accepted = {c["name"]: c["accepted"] for c in seen["nbss"]["called"]}
    assert accepted["STANDIN"] is True
    # DNS: what dig -x and dig A say
    assert seen["dns"]["ptr"] == [name.rstrip(".") for name in dig("-x", SAMBA).split()]
    assert seen["dns"]["forward"][0]["addresses"] == dig("A", FQDN).split()
    assert seen["dns"]["points_back"] is True


def test_dns_part_agrees_with_dig_without_any_netbios_or_smb(knot):
    seen = probe("--dns-server", knot, "--timeout", "0.5")
    assert seen["dns"]["ptr"] == [dig("-x", SAMBA).strip().rstrip(".")] == [FQDN]
    assert seen["dns"]["forward"] == [
        {"name": FQDN, "rcode": "NOERROR", "addresses": [SAMBA], "points_back": True}
    ]
    assert seen["nbns"]["status"] == seen["smb2"]["status"] == "silent"  # no Samba here


def test_audit_fails_the_node_whose_address_the_stand_in_serves(samba, write_config, start_daemon):
    start_daemon(write_config(BASE_CONFIG))
    config = BASE_CONFIG + '\n[[node]]\ncozen_name = "SQL01-CZ3"\nmanagement_ip = "127.0.0.14"\n'
    path = write_config(config)
    done = subprocess.run(
        [sys.executable, "-m", "responder", "audit", "--json", "--config", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=PATIENCE, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    cz1, cz2, cz3 = json.loads(done.stdout)["nodes"]
    assert cz1["ok"] and cz2["ok"]
    checks = cz3["checks"]
    assert "missing SQL01-CZ3<00>" in checks["nbns"]["reasons"]
    assert "extra STANDIN<20>" in checks["nbns"]["reasons"]
    assert (
        "SQL01-CZ3 not accepted as called name" not in checks["nbss"]["reasons"]
    )  # smbd takes any
    assert "NetBIOS computer 'STANDIN', expected 'SQL01-CZ3'" in checks["ntlm"]["reasons"]
    assert "server 'STANDIN', expected 'SQL01-CZ3'" in checks["smb1"]["reasons"]
    assert checks["smb2"]["ok"] is False


def test_probe_packets_dissect_cleanly(write_config, start_daemon, tmp_path):
    """Wireshark finds nothing malformed, and warns about nothing, in a whole probe exchange."""
    start_daemon(write_config(BASE_CONFIG))
    with Capture(
        "lo", tmp_path / "probe.pcapng", "port 53 or port 137 or port 139 or port 445"
    ) as cap:
        argv = ["probe", "127.0.0.12", "--dns-server", "127.0.0.10"]
        done = subprocess.run(
            [sys.executable, "-m", "responder", *argv],
            cwd=REPO, capture_output=True, text=True, timeout=PATIENCE, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert len(fields(cap.path, "dns || nbns || nbss || smb || smb2", "frame.number")) >= 20
    flagged = fields(cap.path, "_ws.malformed || _ws.expert.severity >= 0x600000", "frame.number",
                     "_ws.expert.message")  # fmt: skip
    assert flagged == [], read(cap.path, "-q", "-z", "expert")


@pytest.fixture
def wins(tmp_path: Path) -> Iterator[str]:
    """nmbd as WINS server on 127.0.0.53 (the WINS interop test's set-up)."""
    client = client_smb_conf(tmp_path)
    proc = start(["nmbd", "-F", "--no-process-group", "-s", str(wins_conf(tmp_path))],
                 tmp_path / "wins.out")  # fmt: skip
    try:
        wait_until(lambda: "WINSSRV<00>" in wins_lookup(client, "WINSSRV"), [proc], "WINS nmbd")
        yield WINS_IP
    finally:
        end_process(proc)


def audit(config: str, write_config) -> dict:
    path = write_config(config)
    done = subprocess.run(
        [sys.executable, "-m", "responder", "audit", "--json", "--config", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=PATIENCE, check=False,
    )  # fmt: skip
    data = json.loads(done.stdout)
    assert done.returncode == (0 if data["ok"] else 1), done.stderr
    return data


def test_audit_asks_the_wins_server_for_each_node(wins, write_config, start_daemon):
    with_wins = BASE_CONFIG.replace("[[node]]", f'[netbios]\nwins_server = "{wins}"\n\n[[node]]', 1)
    unregistered = audit(with_wins, write_config)  # the daemon is not running yet
    assert unregistered["nodes"][0]["checks"]["wins"]["reasons"] == [
        f"WINS {wins}: SQL01-CZ1<00> -> negative (rcode 3)"
    ]
    daemon = start_daemon(write_config(with_wins))
    for name, address in (("SQL01-CZ1", "127.0.0.11"), ("SQL01-CZ2", "127.0.0.12")):
        daemon.wait_for_log(f"{name}<00> for {address} is registered")
    registered = audit(with_wins, write_config)
    assert registered["ok"], registered["nodes"]
    assert [n["checks"]["wins"]["ok"] for n in registered["nodes"]] == [True, True]
