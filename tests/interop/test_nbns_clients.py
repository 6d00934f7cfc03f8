"""Real NBNS clients (nmblookup, nbtscan, nmap nbstat) against the real daemon on loopback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import BASE_CONFIG
from tests.interop.nbns_tools import client_smb_conf, run
from tests.interop.tshark import Capture, decode, expert_problems, fields

pytestmark = pytest.mark.interop

MAC1 = "02:00:5e:10:00:11"
CONFIG = BASE_CONFIG.replace(
    'management_ip = "127.0.0.11"\n', f'management_ip = "127.0.0.11"\nmac = "{MAC1}"\n'
)


@pytest.fixture
def daemon(write_config, start_daemon):
    return start_daemon(write_config(CONFIG))


@pytest.fixture
def smb_conf(tmp_path: Path) -> Path:
    return client_smb_conf(tmp_path)


def nmblookup(smb_conf: Path, *args: str) -> str:
    done = run(["nmblookup", "-s", str(smb_conf), *args], timeout=15)
    return done.stdout + done.stderr


def test_nmblookup_resolves_each_node(daemon, smb_conf):
    out = nmblookup(smb_conf, "-U", "127.0.0.11", "SQL01-CZ1")
    assert "127.0.0.11 SQL01-CZ1<00>" in out
    out = nmblookup(smb_conf, "-U", "127.0.0.11", "--recursion", "SQL01-CZ1")
    assert "127.0.0.11 SQL01-CZ1<00>" in out
    out = nmblookup(smb_conf, "-U", "127.0.0.12", "sql01-cz2#20")
    assert "127.0.0.12 sql01-cz2<20>" in out.lower()


def test_public_and_foreign_names_get_no_answer(daemon, smb_conf):
    for address, name in (
        ("127.0.0.11", "SQL01"),
        ("127.0.0.12", "SQL01"),
        ("127.0.0.11", "SQL01-CZ2"),
    ):
        out = nmblookup(smb_conf, "-U", address, name)
        assert "name_query failed to find name" in out, out
        assert f"{address} {name}<00>" not in out


def test_nmblookup_node_status_shows_the_table_and_mac(daemon, smb_conf):
    out = nmblookup(smb_conf, "-A", "127.0.0.11")
    rows = {tuple(row.split()[:3]) for row in out.splitlines() if "<ACTIVE>" in row}
    assert rows == {
        ("SQL01-CZ1", "<00>", "-"),
        ("SQL01-CZ1", "<20>", "-"),
        ("CORP", "<00>", "-"),
        ("CORP", "<1e>", "-"),
    }
    assert re.search(r"CORP\s+<00> - <GROUP>", out)
    assert re.search(r"CORP\s+<1e> - <GROUP>", out)
    assert "MAC Address = 02-00-5E-10-00-11" in out
    assert not re.search(r"^\s*SQL01\s", out, re.MULTILINE)
    out = nmblookup(smb_conf, "-A", "127.0.0.12")
    assert re.search(r"SQL01-CZ2\s+<00>", out)
    assert "SQL01-CZ1" not in out


def test_nbtscan_shows_the_cozen_name_and_mac(daemon):
    out = run(["nbtscan", "127.0.0.11"], timeout=15).stdout
    assert re.search(rf"127\.0\.0\.11\s+SQL01-CZ1\s+<server>.*{MAC1}", out), out
    out = run(["nbtscan", "127.0.0.12"], timeout=15).stdout
    assert re.search(r"127\.0\.0\.12\s+SQL01-CZ2\s", out), out


def test_nmap_nbstat_shows_the_cozen_name_and_mac(daemon):
    argv = ["nmap", "-n", "-Pn", "-sU", "-p137", "--script", "nbstat", "127.0.0.11"]
    out = run(argv, timeout=60).stdout
    assert "NetBIOS name: SQL01-CZ1" in out, out
    assert re.search(r"NetBIOS MAC: 02:?00:?5e:?10:?00:?11", out), out
    assert "SQL01<" not in out


def test_tshark_decodes_every_packet_without_warnings(daemon, smb_conf, tmp_path):
    with Capture("lo", tmp_path / "nbns.pcapng", "udp port 137") as cap:
        nmblookup(smb_conf, "-U", "127.0.0.11", "SQL01-CZ1")
        nmblookup(smb_conf, "-U", "127.0.0.11", "--recursion", "CORP#1e")
        nmblookup(smb_conf, "-A", "127.0.0.12")
        run(["nbtscan", "127.0.0.11"], timeout=15)
        run(["nmap", "-n", "-Pn", "-sU", "-p137", "--script", "nbstat", "127.0.0.11"], timeout=60)
    responses = fields(cap.path, "nbns.flags.response == 1", "ip.src", "nbns.name")
    assert len(responses) >= 5, responses
    assert {row[0] for row in responses} == {"127.0.0.11", "127.0.0.12"}
    text = decode(cap.path, "nbns")
    assert "SQL01-CZ1" in text and "02:00:5e:10:00:11" in text
    assert expert_problems(cap.path) == []
