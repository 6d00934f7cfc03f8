"""The client session the capture tests record and replay: the same real clients every time.

Used by ``tests/interop/test_capture.py`` (recorded by the daemon's ``--pcap``)
and by ``tests/make_captures.py`` (recorded by tshark, against the daemon and
against Samba nmbd/smbd and Knot), so every capture holds the same exchanges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.interop.nbns_tools import client_smb_conf, run

REPEATS = 50  # identical dig queries: the compiled loop's repeats path


@dataclass(frozen=True, slots=True)
class Targets:
    dns: str  # the DNS server
    node1: tuple[str, str]  # (NetBIOS name, address)
    node2: tuple[str, str]
    reverse: str  # the address whose PTR the 50 digs ask


def run_clients(directory: Path, targets: Targets, *, repeats: int = REPEATS) -> None:
    """dig (UDP, TCP), kdig, nmblookup, nbtscan, nmap nbstat and smb scripts, smbclient 139/445."""
    dns, (name1, address1), (name2, address2) = targets.dns, targets.node1, targets.node2
    for _ in range(repeats):
        run(["dig", "+tries=1", "+time=5", f"@{dns}", "-x", targets.reverse], timeout=15)
    run(["dig", "+tcp", "+tries=1", "+time=5", f"@{dns}", f"{name1.lower()}.corp.example"])
    run(["kdig", "+timeout=5", "+retry=0", f"@{dns}", f"{name2.lower()}.corp.example", "AAAA"])
    conf = client_smb_conf(directory)
    run(["nmblookup", "-s", str(conf), "-U", address1, "-A", address1], timeout=15)
    run(["nmblookup", "-s", str(conf), "-U", address2, f"{name2}#20"], timeout=15)
    run(["nbtscan", address1], timeout=15)
    nmap = ["nmap", "-n", "-Pn", "--host-timeout", "30s"]
    run([*nmap, "-sU", "-p137", "--script", "nbstat", address2], timeout=60)
    run([*nmap, "-p445", "--script", "smb-os-discovery,smb-protocols", address1], timeout=60)
    smb_conf = directory / "smbclient.conf"
    smb_conf.write_text("[global]\n  client min protocol = NT1\n")
    smbclient = ["smbclient", "-s", str(smb_conf), "-N", "-L"]
    run([*smbclient, f"//{address2}"], timeout=60)
    run([*smbclient, f"//{name1}", "-I", address1, "-p", "139"], timeout=60)
