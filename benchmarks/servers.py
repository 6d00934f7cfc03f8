"""The servers under test: how each one is configured, started, probed and stopped.

Every server is started for one protocol kind ("dns", "nbns" or "smb") with
the same `Cluster`, pinned to CPU 0, in its own session (setsid) and in the
foreground, with its configuration in a private temporary directory.  It is
stopped by PID (its own and the descendants it forked).  Its CPU time comes
from /proc: utime + stime + cutime + cstime of the process and of every live
descendant (threads are included in a process's own figures).

For DNS and NBNS a second C reference (`start_paired`) runs beside every
server, on the same CPU at PAIRED_LISTEN, so that latency at 10k/s can be
measured against it in alternating turns of one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import records
from benchmarks.records import DNS_LISTEN, PAIRED_LISTEN, Cluster

SERVER_CPU = "0"
PAIRED_LABEL = "c-ref-paired"
C_KINDS = frozenset({"dns", "nbns"})  # what the C reference serves
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 30.0
HERE = Path(__file__).resolve().parent
REPO = HERE.parent


class ServerError(RuntimeError):
    """A server did not start, or did not answer its readiness probe."""


@dataclass(frozen=True)
class Context:
    python: str
    build: Path
    workdir: Path


def daemon_command(python: str, config: Path) -> list[str]:
    """How our daemon is started (the one place to adjust)."""
    return [python, "-m", "responder", "run", "--config", str(config)]


# --- configuration writers --------------------------------------------------


# The load comes from one source far above any real client's rate: `cozen` runs
# with rate limiting off, `cozen-rrl` with it on at a rate that never limits, so
# that every answer pays the whole check (bucket lookup and arithmetic).
LIMITS_OFF = ["[limits]", "responses_per_second = 0"]
LIMITS_NEVER_REACHED = [
    "[limits]",
    "responses_per_second = 10000000",
    "burst = 10000000",
    "nbns_status_per_second = 10000000",
]


def cozen_config(
    cluster: Cluster, fast_path: bool, workers: int = 1, *, limits: bool = False
) -> str:
    lines = [
        *(LIMITS_NEVER_REACHED if limits else LIMITS_OFF),
        "[daemon]",
        f"workers = {workers}",
        "[cluster]",
        f'name = "{cluster.name}"',
        f'dns_domain = "{cluster.domain}"',
        f'workgroup = "{cluster.workgroup}"',
        "[dns]",
        f'listen = ["{DNS_LISTEN}"]',
        "port = 53",
        f"fast_path = {'true' if fast_path else 'false'}",
    ]
    for node in cluster.nodes:
        lines += ["[[node]]", f'cozen_name = "{node.cozen_name}"', f'management_ip = "{node.ip}"']
    return "\n".join(lines) + "\n"


def zone_files(cluster: Cluster) -> dict[str, str]:
    soa = "@ 300 IN SOA ns.{d}. hostmaster.{d}. 1 3600 600 86400 300\n@ 300 IN NS ns.{d}.\n"
    forward = soa.format(d=cluster.domain) + f"ns 300 IN A {DNS_LISTEN}\n"
    forward += "".join(f"{n.cozen_name.lower()} 300 IN A {n.ip}\n" for n in cluster.nodes)
    reverse = soa.format(d=cluster.domain)
    reverse += "".join(f"{p}. 300 IN PTR {t}.\n" for p, t in cluster.ptr_records.items())
    return {cluster.domain: forward, "127.in-addr.arpa": reverse}


def knot_config(cluster: Cluster, workdir: Path) -> str:
    zones = "".join(f"  - domain: {name}\n" for name in zone_files(cluster))
    return f"""server:
    listen: {DNS_LISTEN}@53
    rundir: "{workdir}"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{workdir}"
log:
  - target: stderr
    any: error
template:
  - id: default
    storage: "{workdir}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
zone:
{zones}"""


def dnsmasq_config(cluster: Cluster) -> str:
    lines = [
        "port=53",
        f"listen-address={DNS_LISTEN}",
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        "no-poll",
        "user=root",
        f"local=/{cluster.domain}/",
        "local=/127.in-addr.arpa/",
    ]
    lines += [f"host-record={n.fqdn(cluster.domain)},{n.ip}" for n in cluster.nodes]
    return "\n".join(lines) + "\n"


def samba_config(cluster: Cluster, workdir: Path) -> str:
    node = cluster.nodes[0]
    dirs = ["private dir", "lock directory", "state directory", "cache directory", "pid directory"]
    dir_lines = "".join(f"    {d} = {workdir / d.split()[0]}\n" for d in dirs)
    return f"""[global]
    netbios name = {node.cozen_name}
    workgroup = {cluster.workgroup}
    interfaces = {node.ip}/8
    bind interfaces only = yes
    server role = standalone server
    smb ports = 445
    server min protocol = SMB2_02
    disable netbios = no
    log file = {workdir}/samba.log
    log level = 0
    load printers = no
    disable spoolss = yes
    printcap name = /dev/null
{dir_lines}"""


def dnslib_records(cluster: Cluster) -> str:
    return json.dumps({"A": cluster.a_records, "PTR": cluster.ptr_records})


# --- commands per server ------------------------------------------------------


def _write(ctx: Context, name: str, text: str | bytes) -> Path:
    path = ctx.workdir / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def c_command(ctx: Context, kind: str, cluster: Cluster, address: str | None = None) -> list[str]:
    """``address``: where to listen instead of the server address (the paired reference)."""
    pairs = records.c_templates(cluster, kind)
    blobs = [b for q, r in pairs for b in (records.question_key(q), r)]
    path = records.write_blobs(ctx.workdir / f"templates-{kind}.bin", blobs)
    host, port = records.service_address(kind, cluster)
    argv = [str(ctx.build / "responder"), "-a", address or host, "-p", str(port), "-m", kind]
    return [*argv, "-t", str(path)]


def knot_command(ctx: Context, kind: str, cluster: Cluster) -> list[str]:
    for zone, text in zone_files(cluster).items():
        _write(ctx, f"{zone}.zone", text)
    return ["knotd", "-c", str(_write(ctx, "knot.conf", knot_config(cluster, ctx.workdir)))]


def dnsmasq_command(ctx: Context, kind: str, cluster: Cluster) -> list[str]:
    conf = _write(ctx, "dnsmasq.conf", dnsmasq_config(cluster))
    return ["dnsmasq", "-k", f"--conf-file={conf}", "--pid-file"]


def dnslib_command(ctx: Context, kind: str, cluster: Cluster) -> list[str]:
    data = _write(ctx, "dnslib-records.json", dnslib_records(cluster))
    script = HERE / "dnslib_server.py"
    return [ctx.python, str(script), "--address", DNS_LISTEN, "--port", "53", str(data)]


def samba_command(ctx: Context, kind: str, cluster: Cluster) -> list[str]:
    for d in ("private", "lock", "state", "cache", "pid"):
        (ctx.workdir / d).mkdir(exist_ok=True)
    conf = _write(ctx, "smb.conf", samba_config(cluster, ctx.workdir))
    daemon = "nmbd" if kind == "nbns" else "smbd"
    return [daemon, "--foreground", "--no-process-group", f"--configfile={conf}"]


def cozen_config_path(ctx: Context) -> Path:
    return ctx.workdir / "cozen.toml"


def cozen_command(
    fast_path: bool,
    workers: int = 1,
    *,
    pure_python: bool = False,
    limits: bool = False,
    pcap: bool = False,
) -> Callable[[Context, str, Cluster], list[str]]:
    """``pure_python``: the daemon's Python UDP loop instead of the compiled one;
    ``limits``: rate limiting on (at a rate the load never reaches);
    ``pcap``: recording every exchange (``run --pcap``, into the work directory)."""

    def command(ctx: Context, kind: str, cluster: Cluster) -> list[str]:
        text = cozen_config(cluster, fast_path, workers, limits=limits)
        argv = daemon_command(ctx.python, _write(ctx, cozen_config_path(ctx).name, text))
        if pcap:
            argv += ["--pcap", str(ctx.workdir / f"bench-{kind}.pcapng"), "--pcap-rotate", "200MB"]
        return ["env", "COZEN_PURE_PYTHON=1", *argv] if pure_python else argv

    return command


@dataclass(frozen=True)
class ServerDef:
    label: str
    kinds: frozenset[str]
    command: Callable[[Context, str, Cluster], list[str]]
    cpus: str = SERVER_CPU  # taskset list


SERVERS = {
    s.label: s
    for s in [
        ServerDef("c-ref", C_KINDS, c_command),
        ServerDef("cozen", frozenset({"dns", "nbns", "smb"}), cozen_command(fast_path=True)),
        ServerDef("cozen-rrl", frozenset({"dns", "nbns"}), cozen_command(True, limits=True)),
        ServerDef("cozen-general", frozenset({"dns"}), cozen_command(fast_path=False)),
        ServerDef("cozen-py", frozenset({"dns", "nbns"}), cozen_command(True, pure_python=True)),
        ServerDef("cozen-pcap", frozenset({"dns", "nbns", "smb"}), cozen_command(True, pcap=True)),
        # Worker scaling: two processes on the two CPUs (the load generator shares CPU 1).
        ServerDef("cozen-w2", frozenset({"dns"}), cozen_command(True, workers=2), "0,1"),
        ServerDef("knot", frozenset({"dns"}), knot_command),
        ServerDef("dnsmasq", frozenset({"dns"}), dnsmasq_command),
        ServerDef("dnslib", frozenset({"dns"}), dnslib_command),
        ServerDef("nmbd", frozenset({"nbns"}), samba_command),
        ServerDef("smbd", frozenset({"smb"}), samba_command),
    ]
}


# --- process control and CPU accounting --------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) seconds of pid and its live descendants, reaped children included.

    User time is the server's own code; system time is mostly the kernel's
    UDP receive and send path, which every server here pays alike.
    """
    user = system = 0
    for p in [pid, *descendants(pid)]:
        fields = _stat_fields(p)
        if fields is not None:
            user += int(fields[11]) + int(fields[13])  # utime + cutime
            system += int(fields[12]) + int(fields[14])  # stime + cstime
    return user / CLK_TCK, system / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of pid and its live descendants, in bytes."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


class RunningServer:
    def __init__(
        self, label: str, kind: str, argv: list[str], log: Path, cpus: str = SERVER_CPU
    ) -> None:
        self.label, self.kind, self.log = label, kind, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["taskset", "-c", cpus, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_times(self) -> tuple[float, float]:
        return cpu_times(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def log_tail(self) -> str:
        """The last few lines of the server's output, on one line."""
        lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines()]
        return " | ".join([ln for ln in lines if ln][-3:])

    def stop(self) -> None:
        kids = descendants(self.pid)
        for p in [self.pid, *kids]:
            _signal(p, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for p in kids:
            _signal(p, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def start(ctx: Context, label: str, kind: str, cluster: Cluster) -> RunningServer:
    """Start one server for one protocol kind and wait until it answers."""
    definition = SERVERS[label]
    argv = definition.command(ctx, kind, cluster)
    log = ctx.workdir / f"{label}-{kind}.log"
    server = RunningServer(label, kind, argv, log, definition.cpus)
    return _ready(server, cluster, records.service_address(kind, cluster))


def start_paired(ctx: Context, kind: str, cluster: Cluster) -> RunningServer:
    """The C reference at PAIRED_LISTEN, on the servers' CPU, beside the server under test."""
    argv = c_command(ctx, kind, cluster, PAIRED_LISTEN)
    server = RunningServer(PAIRED_LABEL, kind, argv, ctx.workdir / f"paired-{kind}.log")
    return _ready(server, cluster, (PAIRED_LISTEN, records.PORTS[kind]))


def _ready(server: RunningServer, cluster: Cluster, address: tuple[str, int]) -> RunningServer:
    """Wait until ``server`` answers at ``address``; stop it if it never does."""
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                code = server.proc.returncode
                raise ServerError(f"{server.label} exited ({code}): {server.log_tail()}")
            if PROBES[server.kind](cluster, address):
                return server
            time.sleep(0.2)
        waited = f"{READY_TIMEOUT:.0f}s"
        raise ServerError(f"{server.label} did not answer {server.kind} within {waited}")
    except BaseException:
        server.stop()
        raise


def udp_exchange(packet: bytes, address: tuple[str, int], wait: float = 0.2) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        try:
            sock.sendto(packet, address)
            return sock.recv(2048)
        except OSError:
            return None


# A datagram may be lost, and a server just started on a busy machine may pause:
# a correctness check asks again with a growing wait before it calls a query unanswered.
CHECK_WAITS = (0.2, 0.5, 1.0, 2.0)  # seconds


def patient_exchange(packet: bytes, address: tuple[str, int]) -> bytes | None:
    for wait in CHECK_WAITS:
        reply = udp_exchange(packet, address, wait)
        if reply is not None:
            return reply
    return None


def probe_dns(cluster: Cluster, address: tuple[str, int]) -> bool:
    query = records.dns_query(cluster.nodes[0].fqdn(cluster.domain), "A", edns=False)
    return udp_exchange(query, address) is not None


def probe_nbns(cluster: Cluster, address: tuple[str, int]) -> bool:
    query = records.nbns_name_query(cluster.nodes[0].cozen_name, 0x20)
    return udp_exchange(query, address) is not None


def probe_smb(cluster: Cluster, address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.2):
            return True
    except OSError:
        return False


PROBES: dict[str, Callable[[Cluster, tuple[str, int]], bool]] = {
    "dns": probe_dns,
    "nbns": probe_nbns,
    "smb": probe_smb,
}


def check_answers(kind: str, cluster: Cluster, queries: list[bytes]) -> str | None:
    """Send each distinct query once; return a problem description or None.

    SMB has no datagram queries: its handshake driver checks every reply itself.
    """
    if kind == "smb":
        return None
    address = records.service_address(kind, cluster)
    for query in list(dict.fromkeys(queries))[:8]:
        reply = patient_exchange(query, address)
        if reply is None or len(reply) < 12:
            return f"no reply to {query.hex()}"
        rcode, ancount = reply[3] & 0x0F, int.from_bytes(reply[6:8], "big")
        if not reply[2] & 0x80 or rcode != 0 or ancount < 1:
            return f"bad reply {reply.hex()} to {query.hex()}"
    return None
