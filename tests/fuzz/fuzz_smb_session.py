"""Fuzz target: one SMB connection, NBSS or direct TCP, through SMB1, SMB2, SPNEGO and NTLMSSP.

Drives ``SmbSession`` (MS-SMB2 §3.3.5, MS-CIFS §3.3.5, RFC 1002 §4.3) with
streams cut at arbitrary points. The first byte picks the port: bit 7 set
is TCP 139 (NBSS), clear is 445 (direct TCP).

Invariant: ``receive_data`` never raises; what it returns is a run of
complete frames of that port's framing; and the replies do not depend on how
the stream was segmented, the backlog answered through ``receive_data(b"")``.
"""

from __future__ import annotations

from tests.fuzz import runner
from tests.helpers import golden

with runner.instrumented():
    from protocols.netbios import nbss
    from protocols.smb.session import SmbSession

from tests.protocols.smb.smb_helpers import new_session

DIRECT_CONVERSATIONS = [
    (
        "smbclient_smb2_negotiate_req",
        "smbclient_smb2_session_setup_negotiate_req",
        "smbclient_smb2_session_setup_auth_req",
    ),
    (
        "impacket_smb2_negotiate_req",
        "impacket_smb2_session_setup_negotiate_req",
        "impacket_smb2_session_setup_auth_req",
    ),
    ("impacket_multiprotocol_negotiate_req", "smbclient_smb3_negotiate_req"),
    ("nmap_smb1_negotiate_req", "nmap_smb1_session_setup_anonymous_req"),
    ("nmap_smb1_ext_negotiate_req", "nmap_smb1_session_setup_plain_req"),
    ("smbclient_nt1_negotiate_req", "smbclient_nt1_session_setup_negotiate_req"),
    ("smbclient_nt1_nospnego_negotiate_req", "smbclient_nt1_nospnego_session_setup_req"),
    (
        "impacket_smb1_negotiate_req",
        "impacket_smb1_session_setup_negotiate_req",
        "impacket_smb1_session_setup_auth_req",
    ),
    ("nmap_smb2_negotiate_req", "nmap_smb2_single_dialect_negotiate_req"),
]


def conversation(names: tuple[str, ...]) -> bytes:
    return b"".join(golden(f"smb_{name}") for name in names)


def seeds() -> list[bytes]:
    direct = [b"\x00" + conversation(names) for names in DIRECT_CONVERSATIONS]
    request = golden("smb_smbclient_nbss_session_request")
    netbios = [b"\x80" + request + conversation(names) for names in DIRECT_CONVERSATIONS[:4]]
    return (
        direct
        + netbios
        + [b"\x82\x00\x10\x00\x60" + request + conversation(DIRECT_CONVERSATIONS[0])]
    )


def feed(segments: list[bytes], netbios: bool) -> tuple[bytes, bool]:
    session: SmbSession = new_session(netbios=netbios)
    out = bytearray()
    for segment in segments:
        out += session.receive_data(segment)
        while session.pending:
            out += session.receive_data(b"")
    return bytes(out), session.closed


def check_framing(out: bytes, netbios: bool) -> None:
    framer = nbss.Framer(direct=not netbios, max_message_size=1 << 20)
    framer.feed(out)
    while framer.next_frame() is not None:
        pass
    assert framer.buffered == 0


def one_input(data: bytes) -> None:
    netbios = bool(data[:1]) and data[0] & 0x80 != 0
    whole, segments = runner.split(data)
    out, closed = feed(segments, netbios)
    assert (out, closed) == feed([whole], netbios)
    check_framing(out, netbios)


if __name__ == "__main__":
    runner.main(one_input, seeds())
