"""The authoritative DNS against real clients: dig, kdig and dnspython.

One daemon serves the whole module (DNS on 127.0.0.10, two nodes, one with
IPv6, and many listen addresses so an in-zone NS name has an answer too big
for 512 bytes). tshark records every packet on port 53 for the module; the
last test decodes the capture and asserts it holds no malformed packet and no
expert warning.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.helpers import DaemonProcess
from tests.interop.tshark import Capture, fields, read

pytestmark = pytest.mark.interop

SERVER = "127.0.0.10"
EXTRA_LISTEN = [f"127.0.1.{i}" for i in range(1, 40)]  # makes cozen-ns.<domain> A > 512 bytes
CONFIG = f"""\
[cluster]
name = "SQL01"
dns_domain = "corp.example"
workgroup = "CORP"

[dns]
listen = {[SERVER, *EXTRA_LISTEN]!r}
tcp_idle_timeout = 3

[smb]
enabled = false

[[node]]
cozen_name = "SQL01-CZ1"
management_ip = "127.0.0.11"
management_ipv6 = "fd00::11"

[[node]]
cozen_name = "SQL01-CZ2"
management_ip = "127.0.0.12"
""".replace("'", '"')


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Iterator[Capture]:
    path = tmp_path_factory.mktemp("dns-capture") / "dns.pcapng"
    with Capture("lo", path, "port 53") as cap:
        yield cap


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, capture) -> Iterator[DaemonProcess]:
    path = tmp_path_factory.mktemp("dns-daemon") / "config.toml"
    path.write_text(CONFIG)
    proc = DaemonProcess(path)
    try:
        proc.wait_for_log("ready")
        yield proc
    finally:
        proc.stop()


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode == 0, f"{argv}: {result.stderr}{result.stdout}"
    return result.stdout


def dig(*args: str) -> str:
    return run("dig", f"@{SERVER}", "+tries=1", "+time=3", *args)


def kdig(*args: str) -> str:
    return run("kdig", f"@{SERVER}", "+retry=0", "+time=3", *args)


def status(output: str) -> str:
    match = re.search(r"status: (\w+)", output)
    assert match, output
    return match.group(1)


def flags(output: str) -> set[str]:
    match = re.search(r";; flags: ([^;]*);", output)
    assert match, output
    return set(match.group(1).split())


def flat(output: str) -> str:
    return " ".join(output.split())


def answers(output: str) -> list[str]:
    lines = output.split("ANSWER SECTION:\n", 1)
    if len(lines) == 1:
        return []
    section = lines[1].split("\n\n", 1)[0]
    return [" ".join(line.split()) for line in section.splitlines()]


def test_a_record_authoritative(daemon):
    out = dig("sql01-cz1.corp.example")
    assert status(out) == "NOERROR"
    assert "aa" in flags(out) and "ra" not in flags(out)
    assert "rd" in flags(out)  # echoed
    assert answers(out) == ["sql01-cz1.corp.example. 300 IN A 127.0.0.11"]


def test_aaaa_record(daemon):
    assert answers(dig("sql01-cz1.corp.example", "AAAA")) == [
        "sql01-cz1.corp.example. 300 IN AAAA fd00::11"
    ]


def test_mixed_case_survives(daemon):
    out = dig("+norec", "SqL01-cZ2.Corp.EXAMPLE")
    assert "rd" not in flags(out)
    assert answers(out) == ["SqL01-cZ2.Corp.EXAMPLE. 300 IN A 127.0.0.12"]


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("127.0.0.11", "sql01-cz1.corp.example."),
        ("127.0.0.12", "sql01-cz2.corp.example."),
        ("fd00::11", "sql01-cz1.corp.example."),
    ],
)
def test_ptr(daemon, address, name):
    out = dig("-x", address)
    assert status(out) == "NOERROR" and "aa" in flags(out)
    assert [a.split()[-1] for a in answers(out)] == [name]


def test_nodata_has_soa(daemon):
    out = dig("sql01-cz2.corp.example", "MX")
    assert status(out) == "NOERROR" and "aa" in flags(out)
    assert answers(out) == []
    assert "AUTHORITY: 1" in out and "IN SOA cozen-ns.corp.example." in flat(out)


def test_nxdomain_has_soa(daemon):
    out = dig("nothere.corp.example")
    assert status(out) == "NXDOMAIN" and "aa" in flags(out)
    assert "IN SOA cozen-ns.corp.example. hostmaster.corp.example." in flat(out)


def test_outside_zone_refused(daemon):
    out = dig("www.example.org")
    assert status(out) == "REFUSED" and answers(out) == []


def test_public_name_never_answered(daemon):
    for qtype in ("A", "AAAA", "ANY"):
        out = dig("sql01.corp.example", qtype)
        assert status(out) == "REFUSED", out
        assert answers(out) == []


def test_unowned_reverse_name_refused(daemon):
    assert status(dig("-x", "127.0.0.99")) == "REFUSED"


def test_soa_and_ns_at_apex(daemon):
    soa = answers(dig("corp.example", "SOA"))
    assert len(soa) == 1 and "IN SOA cozen-ns.corp.example. hostmaster.corp.example." in soa[0]
    assert answers(dig("corp.example", "NS")) == ["corp.example. 300 IN NS cozen-ns.corp.example."]
    reverse_soa = answers(dig("11.0.0.127.in-addr.arpa", "SOA"))
    assert len(reverse_soa) == 1 and "SOA cozen-ns.corp.example." in reverse_soa[0]


def test_tcp(daemon):
    out = dig("+tcp", "sql01-cz1.corp.example")
    assert answers(out) == ["sql01-cz1.corp.example. 300 IN A 127.0.0.11"]


def test_kdig_tcp_keepopen_several_queries(daemon):
    out = kdig(
        "+tcp", "+keepopen", "sql01-cz1.corp.example", "sql01-cz2.corp.example", "-x", "127.0.0.12"
    )
    assert out.count("status: NOERROR") == 3
    assert "127.0.0.11" in out and "127.0.0.12" in out and "sql01-cz2.corp.example." in out


def test_pipelined_tcp_queries_in_one_segment(daemon):
    names = ["sql01-cz1.corp.example", "sql01-cz2.corp.example", "nothere.corp.example"]
    queries = [dns.message.make_query(n, "A") for n in names]
    wire = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
    with socket.create_connection((SERVER, 53), timeout=5) as conn:
        conn.sendall(wire)
        replies = []
        for _ in names:
            length = struct.unpack("!H", _read_exactly(conn, 2))[0]
            replies.append(dns.message.from_wire(_read_exactly(conn, length)))
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [dns.rcode.to_text(r.rcode()) for r in replies] == ["NOERROR", "NOERROR", "NXDOMAIN"]


def _read_exactly(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def test_edns_answer_carries_our_payload_size(daemon):
    out = dig("+edns=0", "+cookie", "sql01-cz1.corp.example")
    assert "; EDNS: version: 0, flags:; udp: 1232" in out
    assert answers(out) == ["sql01-cz1.corp.example. 300 IN A 127.0.0.11"]
    assert "OPT PSEUDOSECTION" not in dig("+noedns", "sql01-cz1.corp.example")


def test_kdig_edns_with_do_bit(daemon):
    out = kdig("+dnssec", "sql01-cz2.corp.example")
    assert "EDNS PSEUDOSECTION" in out and "flags: do" in out
    assert "127.0.0.12" in out


def test_badvers(daemon):
    out = dig("+edns=1", "+noednsnegotiation", "sql01-cz1.corp.example")
    assert status(out) == "BADVERS"
    assert answers(out) == []


def test_notimp_for_other_opcodes(daemon):
    out = dig("+opcode=2", "sql01-cz1.corp.example")  # STATUS
    assert status(out) == "NOTIMP"


def test_formerr_without_question(daemon):
    out = dig("+header-only")
    assert status(out) == "FORMERR"


def test_any_gets_minimal_answer(daemon):
    out = dig("sql01-cz1.corp.example", "ANY")
    assert status(out) == "NOERROR"
    assert len(answers(out)) == 1


def test_class_other_than_in_refused(daemon):
    assert status(dig("sql01-cz1.corp.example", "A", "-c", "CH")) == "REFUSED"


def test_truncation_over_udp_and_tcp_fallback(daemon):
    truncated = dig("+noedns", "+ignore", "cozen-ns.corp.example")
    assert "tc" in flags(truncated) and answers(truncated) == []
    full = dig("+noedns", "cozen-ns.corp.example")  # dig retries over TCP
    assert len(answers(full)) == 1 + len(EXTRA_LISTEN)
    with_edns = dig("+bufsize=1232", "cozen-ns.corp.example")
    assert "tc" not in flags(with_edns) and len(answers(with_edns)) == 1 + len(EXTRA_LISTEN)


def test_dnspython_udp_and_tcp(daemon):
    for send in (dns.query.udp, dns.query.tcp):
        query = dns.message.make_query("SQL01-CZ2.corp.example", "A", use_edns=0)
        reply = send(query, SERVER, timeout=3)
        assert reply.flags & dns.flags.AA and not reply.flags & dns.flags.RA
        assert reply.question[0].name.to_text() == "SQL01-CZ2.corp.example."
        assert [r.address for r in reply.answer[0]] == ["127.0.0.12"]
        assert reply.edns == 0 and reply.payload == 1232


def test_responses_are_never_answered(daemon):
    query = dns.message.make_query("sql01-cz1.corp.example", "A")
    response = dns.message.make_response(query)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(response.to_wire(), (SERVER, 53))
        with pytest.raises(TimeoutError):
            sock.recv(512)


def test_garbage_does_not_hurt(daemon):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        for junk in (b"", b"\x00", b"\x12\x34\x01\x00\x00\x01", b"\xff" * 600):
            sock.sendto(junk, (SERVER, 53))
    assert answers(dig("sql01-cz1.corp.example")) == ["sql01-cz1.corp.example. 300 IN A 127.0.0.11"]


def test_capture_decodes_without_warnings(daemon, capture):
    """Runs last in this module: every packet above decodes without a warning or error."""
    dig("sql01-cz1.corp.example")  # at least one exchange even when run alone
    capture.stop()
    assert len(fields(capture.path, "dns", "frame.number")) >= 40
    assert len(fields(capture.path, "dns.flags.response == 1", "frame.number")) >= 20
    # expert severities: chat 0x200000, note 0x400000, warning 0x600000, error 0x800000
    # Only what the daemon sent: test_garbage_does_not_hurt sends malformed queries on purpose.
    ours = "(udp.srcport == 53 or tcp.srcport == 53)"
    malformed = read(
        capture.path, "-Y", f"{ours} and (_ws.malformed or _ws.expert.severity >= 0x600000)"
    )
    assert malformed.strip() == "", malformed
