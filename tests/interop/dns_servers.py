"""Real primary DNS servers for the registration tests: BIND 9 ``named`` and Knot ``knotd``.

Each runs in the suite's private network namespace on its own loopback
address, with its config, zone files and TSIG keys under a temporary
directory, in its own session, and is ended by PID. Two keys: the daemon's
(granted A/AAAA/DHCID/PTR, as the README tells operators) and an admin key
the tests use to plant static records, delete records behind the daemon's
back and reset the zones between tests.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import dns.zone

from tests.helpers import end_process

FORWARD = "corp.example"
REVERSE4 = "0.0.127.in-addr.arpa"
REVERSE6 = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa"  # fd00::/64
ZONES = (FORWARD, REVERSE4, REVERSE6)
KEY_NAME = "cozen-key"
ADMIN_KEY_NAME = "admin-key"


def new_secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def dig_answer(server: str, *args: str) -> str:
    """The answer section dig prints for a query to ``server``."""
    argv = ["dig", f"@{server}", "+noall", "+answer", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 50 ms, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def zone_file(zone: str, ns_address: str) -> str:
    head = f"$TTL 300\n@ IN SOA ns1.{FORWARD}. hostmaster.{FORWARD}. 1 3600 600 86400 60\n"
    head += f"@ IN NS ns1.{FORWARD}.\n"
    return head + (f"ns1 IN A {ns_address}\n" if zone == FORWARD else "")


@dataclass
class ZoneServer:
    """One primary server: started, queried, updated with the admin key, reset, stopped."""

    address: str
    directory: Path
    secret: str = field(default_factory=new_secret)
    admin_secret: str = field(default_factory=new_secret)
    proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------ subclass hooks

    def argv(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ lifecycle

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def start(self) -> None:
        """Start the server and wait (bounded) until every zone answers."""
        self.write_config()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._ready, 15, f"{type(self).__name__} on {self.address}")

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc)
            self.proc = None

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited:\n{self.log()}")
        try:
            return all(self.query(zone, "SOA").rcode() == dns.rcode.NOERROR for zone in ZONES)
        except (OSError, dns.exception.Timeout):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def write_zones(self) -> None:
        for zone in ZONES:
            (self.directory / f"{zone}.zone").write_text(zone_file(zone, self.address))

    # ------------------------------------------------------------ queries

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        message = dns.message.make_query(name, rdtype)
        return dns.query.udp(message, self.address, timeout=1.0)

    def records(self, name: str, rdtype: str) -> set[str]:
        """The RDATA texts of ``name``'s ``rdtype`` RRset (empty when none)."""
        response = self.query(name, rdtype)
        wanted = dns.rdatatype.from_text(rdtype)
        return {rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset}

    def serial(self, zone: str = FORWARD) -> int:
        return int(next(iter(self.query(zone, "SOA").answer[0])).serial)

    def names(self, zone: str) -> set[str]:
        """Every owner name below the apex (by AXFR)."""
        xfr = dns.zone.from_xfr(dns.query.xfr(self.address, zone, timeout=2.0))
        apex = dns.name.from_text(zone)
        return {(n.derelativize(apex)).to_text() for n in xfr.nodes if n != dns.name.empty} - {
            f"ns1.{FORWARD}."
        }

    # ------------------------------------------------------------ admin updates

    def admin_update(self, zone: str) -> dns.update.UpdateMessage:
        key = dns.tsig.Key(ADMIN_KEY_NAME, self.admin_secret, dns.tsig.HMAC_SHA256)
        return dns.update.UpdateMessage(zone, keyring=key)

    def send(self, update: dns.update.UpdateMessage) -> str:
        response = dns.query.tcp(update, self.address, timeout=2.0)
        return dns.rcode.to_text(response.rcode())

    def reset(self) -> None:
        """Delete everything below each apex but the name server's address."""
        for zone in ZONES:
            names = self.names(zone)
            if names:
                update = self.admin_update(zone)
                for name in names:
                    update.delete(name)
                assert self.send(update) == "NOERROR"


class Named(ZoneServer):
    """BIND 9 as an authoritative-only primary (no recursion, no root hints)."""

    def argv(self) -> list[str]:
        return ["named", "-g", "-n", "1", "-c", str(self.directory / "named.conf")]

    def start(self) -> None:
        # named listens only on addresses it finds on an interface.
        subprocess.run(["ip", "addr", "replace", f"{self.address}/32", "dev", "lo"], check=True)
        super().start()

    def remove_address(self) -> None:
        subprocess.run(["ip", "addr", "del", f"{self.address}/32", "dev", "lo"], check=False)

    def write_config(self) -> None:
        self.write_zones()
        d = self.directory
        for journal in d.glob("*.jnl"):  # a restart starts from the zone files again
            journal.unlink()
        zones = "".join(
            f'zone "{zone}" {{ type primary; file "{d}/{zone}.zone"; update-policy {{\n'
            f"  grant {KEY_NAME} zonesub {'A AAAA DHCID' if zone == FORWARD else 'PTR DHCID'};\n"
            f"  grant {ADMIN_KEY_NAME} zonesub ANY; }}; }};\n"
            for zone in ZONES
        )
        (d / "named.conf").write_text(
            "options {\n"
            f'  directory "{d}";\n  pid-file "{d}/named.pid";\n'
            f'  session-keyfile "{d}/session.key";\n'
            f"  listen-on port 53 {{ {self.address}; }};\n  listen-on-v6 {{ none; }};\n"
            "  recursion no;\n  dnssec-validation no;\n  notify no;\n"
            "  allow-transfer { 127.0.0.0/8; };\n};\n"
            "controls { };\n"
            f'key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{self.secret}"; }};\n'
            f'key "{ADMIN_KEY_NAME}" {{ algorithm hmac-sha256; secret "{self.admin_secret}"; }};\n'
            + zones
        )


class Knot(ZoneServer):
    """Knot DNS as a primary with an update ACL limited to the daemon's types."""

    def argv(self) -> list[str]:
        return ["knotd", "-c", str(self.directory / "knot.conf")]

    def write_config(self) -> None:
        self.write_zones()
        d = self.directory
        zones = "".join(
            f"  - domain: {zone}\n    file: {zone}.zone\n    acl: [cozen, admin, transfer]\n"
            for zone in ZONES
        )
        (d / "knot.conf").write_text(
            f'server:\n  rundir: "{d}"\n  listen: {self.address}@53\n'
            f'  pidfile: "{d}/knot.pid"\n'
            f'control:\n  listen: "{d}/knot.sock"\n'
            "log:\n  - target: stderr\n    any: info\n"
            f'database:\n  storage: "{d}"\n'
            "key:\n"
            f"  - id: {KEY_NAME}\n    algorithm: hmac-sha256\n    secret: {self.secret}\n"
            f"  - id: {ADMIN_KEY_NAME}\n    algorithm: hmac-sha256\n"
            f"    secret: {self.admin_secret}\n"
            "acl:\n"
            f"  - id: cozen\n    key: {KEY_NAME}\n    action: update\n"
            "    update-type: [A, AAAA, DHCID, PTR]\n"
            f"  - id: admin\n    key: {ADMIN_KEY_NAME}\n    action: update\n"
            "  - id: transfer\n    address: 127.0.0.0/8\n    action: transfer\n"
            f'template:\n  - id: default\n    storage: "{d}"\n    zonefile-sync: -1\n'
            "    journal-content: all\n"
            "zone:\n" + zones
        )
