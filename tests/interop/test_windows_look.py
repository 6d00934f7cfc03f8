"""What a scanner sees: nmap, dig and tshark find the Windows server and the named DNS sidecar.

nmap's service database (nmap-service-probes) recognises Windows on 139 by
the NEGATIVE SESSION RESPONSE 0x8F and on 445 by the SMB1 NEGOTIATE response
bytes; the product names it prints vary with nmap's version, so only
"Microsoft Windows" is asserted.  smb2-time prints "N/A" for a zero
ServerStartTime.  dns-nsid, dig +nsid and dig CH TXT read the [dns] identity.
tshark shows the TTL of our packets ([daemon] ip_ttl, default 128).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import BASE_CONFIG
from tests.interop.tshark import Capture, fields

pytestmark = [pytest.mark.interop]

# Addresses of their own: the connections these scans leave in TIME_WAIT (the server
# closes first after 0x8F) must not block other tests' plain binds of 127.0.0.10-12.
ADDRESSES = {"127.0.0.10": "127.0.0.40", "127.0.0.11": "127.0.0.41", "127.0.0.12": "127.0.0.42"}
DNS_SERVER = ADDRESSES["127.0.0.10"]
SMB_NODE = ADDRESSES["127.0.0.12"]
IDENTITY = "sidecar-a.example"


def run(*argv: str, timeout: float = 120) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{argv}: {result.stderr}{result.stdout}"
    return result.stdout


def _config(extra: str = "") -> str:
    text = BASE_CONFIG.replace("[dns]\n", f'[dns]\nidentity = "{IDENTITY}"\n{extra}')
    for base, ours in ADDRESSES.items():
        text = text.replace(f'"{base}"', f'"{ours}"')
    return text


def _products(xml: str) -> dict[str, str]:
    """Port -> "service-name product" from nmap's XML."""
    out = {}
    for port, service in re.findall(r'portid="(\d+)">.*?<service ([^>]*)>', xml, re.S):
        attributes = dict(re.findall(r'(\w+)="([^"]*)"', service))
        out[port] = f"{attributes['name']} {attributes.get('product', '')}"
    return out


def test_nmap_version_scan_names_microsoft_windows_on_139_and_445(write_config, start_daemon):
    start_daemon(write_config(_config()))
    xml = run("nmap", "-n", "-Pn", "-sV", "-p139,445", "-oX", "-", SMB_NODE)
    products = _products(xml)
    assert set(products) == {"139", "445"}
    assert "Microsoft Windows" in products["139"], xml
    assert products["139"].startswith("netbios-ssn"), xml
    assert "Microsoft Windows" in products["445"], xml
    assert products["445"].startswith("microsoft-ds"), xml
    assert 'extrainfo="workgroup: CORP" hostname="SQL01-CZ2"' in xml


def test_nmap_smb2_time_has_no_start_date(write_config, start_daemon):
    start_daemon(write_config(_config()))
    out = run("nmap", "-n", "-Pn", "-p445", "--script", "smb2-time", SMB_NODE)
    assert re.search(r"date: \d{4}-\d\d-\d\dT", out), out
    assert "start_date: N/A" in out, out


def test_nmap_dns_nsid_prints_identity(write_config, start_daemon):
    start_daemon(write_config(_config()))
    out = run("nmap", "-n", "-Pn", "-sU", "-p53", "--script", "dns-nsid", DNS_SERVER)
    assert f"NSID: {IDENTITY} ({IDENTITY.encode().hex()})" in out, out
    assert f"id.server: {IDENTITY}" in out, out
    assert "bind.version" not in out, out  # no version configured: REFUSED


def dig(*args: str) -> str:
    return run("dig", f"@{DNS_SERVER}", "+tries=1", "+time=3", *args, timeout=20)


def test_dig_nsid_and_chaos_as_configured(write_config, start_daemon):
    start_daemon(write_config(_config()))
    assert f'NSID: {" ".join(f"{b:02x}" for b in IDENTITY.encode())} ("{IDENTITY}")' in dig(
        "+nsid", "sql01-cz1.corp.example", "A"
    )
    for name in ("id.server", "hostname.bind"):
        assert dig("+short", "CH", "TXT", name).strip() == f'"{IDENTITY}"'
    assert "status: REFUSED" in dig("CH", "TXT", "version.bind")


def test_dig_version_when_configured_and_all_off(write_config, start_daemon):
    daemon = start_daemon(write_config(_config('version = "cozen 1"\n')))
    assert dig("+short", "CH", "TXT", "version.bind").strip() == '"cozen 1"'
    assert dig("+short", "CH", "TXT", "version.server").strip() == '"cozen 1"'
    daemon.stop()
    start_daemon(write_config(_config('version = "cozen 1"\nserver_identity = false\n')))
    assert "status: REFUSED" in dig("CH", "TXT", "version.bind")
    assert "status: REFUSED" in dig("CH", "TXT", "id.server")
    assert "NSID" not in dig("+nsid", "sql01-cz1.corp.example", "A")


def test_our_packets_carry_ttl_128(write_config, start_daemon, tmp_path: Path):
    start_daemon(write_config(_config()))
    ports = "port 53 or port 137 or port 139 or port 445"
    with Capture("lo", tmp_path / "ttl.pcapng", ports) as cap:
        dig("sql01-cz1.corp.example", "A")
        dig("+tcp", "sql01-cz1.corp.example", "A")
        run("nmblookup", "-U", SMB_NODE, "--recursion", "SQL01-CZ2", timeout=20)
        run("nmap", "-n", "-Pn", "-p139,445", "--script", "smb-protocols", SMB_NODE)
        cap.stop()
    ours = "udp.srcport == 53 || tcp.srcport == 53 || udp.srcport == 137"
    ours += " || tcp.srcport == 139 || tcp.srcport == 445"
    rows = fields(cap.path, ours, "udp.srcport", "tcp.srcport", "ip.ttl")
    sources = {row[0] or row[1] for row in rows}
    assert {"53", "137", "139", "445"} <= sources, rows
    assert {row[2] for row in rows} == {"128"}, rows
