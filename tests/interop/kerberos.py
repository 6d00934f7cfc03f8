"""A real MIT Kerberos KDC and a BIND 9 that takes GSS-TSIG, for the registration tests.

The realm CORP.EXAMPLE is created by the test in a temporary directory
(``kdb5_util create -s``, ``kadmin.local``), found through KRB5_CONFIG and
KRB5_KDC_PROFILE files written there; ``krb5kdc`` listens on a loopback
address of the suite's private network namespace. The daemon's principal
and ``DNS/ns.corp.example`` get keytabs (``ktadd``); ``named`` reads the
latter (``tkey-gssapi-keytab``) and grants the daemon's principal its own
names only. krb5.conf neither canonicalizes nor reverse-resolves host
names, so ``ns.corp.example`` needs no address: the daemon is pointed at
the server by address with ``server_principal`` set.
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import end_process
from tests.interop.dns_servers import (
    ADMIN_KEY_NAME,
    FORWARD,
    REVERSE4,
    REVERSE6,
    ZONES,
    Named,
    wait_until,
)

REALM = "CORP.EXAMPLE"
KDC = "127.0.0.88"
DAEMON_PRINCIPAL = f"cozen/sidecar.corp.example@{REALM}"
DNS_PRINCIPAL = f"DNS/ns.corp.example@{REALM}"
# the zones' SOA MNAME is ns1.corp.example: a config without server_principal asks for this one
MNAME_PRINCIPAL = f"DNS/ns1.corp.example@{REALM}"
# the names the daemon's principal may update (SQL01-CZ1 and its PTR); nothing else
GRANTED = {
    FORWARD: ("sql01-cz1.corp.example", "A AAAA DHCID"),
    REVERSE4: ("11.0.0.127.in-addr.arpa", "PTR DHCID"),
    REVERSE6: ("1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0." + REVERSE6, "PTR DHCID"),
}


@dataclass
class Kdc:
    """One realm: its database, config files, keytabs and the running krb5kdc."""

    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = self.directory
        self.env = {"KRB5_CONFIG": str(d / "krb5.conf"), "KRB5_KDC_PROFILE": str(d / "kdc.conf")}
        self.env["KRB5CCNAME"] = f"FILE:{d}/no-ccache"  # tests set their own when they want one

    @property
    def daemon_keytab(self) -> Path:
        return self.directory / "cozen.keytab"

    @property
    def dns_keytab(self) -> Path:
        return self.directory / "dns.keytab"

    def create(self) -> None:
        d = self.directory
        (d / "krb5.conf").write_text(
            "[libdefaults]\n"
            f"  default_realm = {REALM}\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n"
            "  dns_canonicalize_hostname = false\n  rdns = false\n"
            "  udp_preference_limit = 1\n  max_retries = 1\n"
            f"[realms]\n  {REALM} = {{\n    kdc = {KDC}:88\n  }}\n"
            f"[domain_realm]\n  .corp.example = {REALM}\n  corp.example = {REALM}\n"
        )
        (d / "kdc.conf").write_text(
            f"[kdcdefaults]\n  kdc_listen = {KDC}:88\n  kdc_tcp_listen = {KDC}:88\n"
            f"[realms]\n  {REALM} = {{\n"
            f"    database_name = {d}/principal\n    key_stash_file = {d}/stash\n"
            f"    acl_file = {d}/kadm5.acl\n    max_life = 10h\n"
            "    supported_enctypes = aes256-cts-hmac-sha1-96:normal\n  }\n"
            f"[logging]\n  kdc = FILE:{d}/kdc.log\n"
        )
        (d / "kadm5.acl").write_text("")
        self.run("kdb5_util", "-r", REALM, "create", "-s", "-P", "master-password-for-tests")
        for principal in (DAEMON_PRINCIPAL, DNS_PRINCIPAL, MNAME_PRINCIPAL):
            self.kadmin(f"addprinc -randkey {principal}")
        self.kadmin(f"ktadd -k {self.daemon_keytab} {DAEMON_PRINCIPAL}")
        # named accepts a context for any principal its keytab holds
        self.kadmin(f"ktadd -k {self.dns_keytab} {DNS_PRINCIPAL} {MNAME_PRINCIPAL}")
        os.chmod(self.daemon_keytab, 0o600)

    def run(self, *argv: str) -> str:
        done = subprocess.run(
            argv,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
        return done.stdout

    def kadmin(self, query: str) -> str:
        return self.run("kadmin.local", "-r", REALM, "-q", query)

    def start(self) -> None:
        with (self.directory / "krb5kdc.out").open("ab") as out:
            self.proc = subprocess.Popen(
                ["krb5kdc", "-n", "-r", REALM],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._listening, 10, f"krb5kdc on {KDC}:88")

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"krb5kdc exited: {(self.directory / 'kdc.log').read_text()}")
        try:
            with socket.create_connection((KDC, 88), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc)
            self.proc = None


@dataclass
class GssNamed(Named):
    """``named`` with the realm's DNS/ns.corp.example keytab and the daemon's grants."""

    kdc: Kdc | None = None

    def start(self) -> None:
        assert self.kdc is not None
        saved = {k: os.environ.get(k) for k in self.kdc.env}
        os.environ.update(self.kdc.env)  # named reads KRB5_CONFIG when it starts
        try:
            super().start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def write_config(self) -> None:
        assert self.kdc is not None
        super().write_config()
        conf = self.directory / "named.conf"
        text = conf.read_text()
        text = text.replace(
            "  recursion no;\n",
            f'  recursion no;\n  tkey-gssapi-keytab "{self.kdc.dns_keytab}";\n',
        )
        for zone in ZONES:
            owner, types = GRANTED[zone]
            text = text.replace(
                f"  grant {ADMIN_KEY_NAME} zonesub ANY; }}; }};\n",
                f"  grant {ADMIN_KEY_NAME} zonesub ANY;\n"
                f'  grant "{DAEMON_PRINCIPAL}" name {owner}. {types}; }}; }};\n',
                1,
            )
        conf.write_text(text)
