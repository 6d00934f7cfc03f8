"""SmbCounters: what every session counts at its NEGOTIATE and SESSION_SETUP decisions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocols.smb.counters import SmbCounters
from protocols.smb.session import SmbIdentity, SmbSession
from tests.helpers import golden
from tests.protocols.smb.smb_helpers import CLOCK, IDENTITY, CountingRandom

SESSION_ID = slice(4 + 40, 4 + 48)  # NBSS/direct header, then SMB2 SessionId (MS-SMB2 §2.2.1)


def run(identity: SmbIdentity, *captures: str) -> SmbCounters:
    """Feed ``captures`` to one session, as its client would (session ID echoed)."""
    counters = SmbCounters()
    session = SmbSession(
        identity,
        netbios=False,
        random_bytes=CountingRandom(),
        clock=lambda: CLOCK,
        counters=counters,
    )
    session_id = bytes(8)
    for name in captures:
        data = bytearray(golden(name))
        if data[4:8] == b"\xfeSMB" and data[SESSION_ID] != bytes(8):
            data[SESSION_ID] = session_id
        reply = session.receive_data(bytes(data))
        if reply[4:8] == b"\xfeSMB" and reply[SESSION_ID] != bytes(8):
            session_id = reply[SESSION_ID]
    return counters


@pytest.mark.parametrize(
    ("max_dialect", "dialect"),
    [(0x0311, "3.1.1"), (0x0302, "3.0.2"), (0x0300, "3.0"), (0x0210, "2.1"), (0x0202, "2.0.2")],
)
def test_smb2_negotiate_is_counted_by_the_dialect_chosen(max_dialect, dialect):
    counters = run(replace(IDENTITY, max_dialect=max_dialect), "smb_smbclient_smb2_negotiate_req")
    assert counters.negotiations == {dialect: 1}


def test_smb1_and_multiprotocol_negotiates():
    assert run(IDENTITY, "smb_smbclient_nt1_negotiate_req").negotiations == {"NT LM 0.12": 1}
    multi = run(IDENTITY, "smb_impacket_multiprotocol_negotiate_req")
    assert multi.negotiations == {"2.???": 1}
    single = run(IDENTITY, "smb_nmap_smb2_single_dialect_negotiate_req")
    assert single.negotiations == {"2.0.2": 1}
    refused = run(replace(IDENTITY, smb1=False), "smb_smbclient_nt1_negotiate_req")
    assert refused.negotiations == {"refused": 1}


def test_smb2_handshake_counts_the_challenge_then_the_logon_failure():
    counters = run(
        IDENTITY,
        "smb_smbclient_smb2_negotiate_req",
        "smb_smbclient_smb2_session_setup_negotiate_req",
        "smb_smbclient_smb2_session_setup_auth_req",
    )
    assert counters.negotiations == {"3.1.1": 1}
    assert counters.session_setups == {"challenge_sent": 1, "logon_failure": 1}


def test_smb1_session_setup_results():
    nmap = ("smb_nmap_smb1_negotiate_req", "smb_nmap_smb1_session_setup_anonymous_req")
    assert run(IDENTITY, *nmap).session_setups == {"null_session": 1}
    denied = run(replace(IDENTITY, null_session=False), *nmap)
    assert denied.session_setups == {"access_denied": 1}
    plain = (
        "smb_smbclient_nt1_nospnego_negotiate_req",
        "smb_smbclient_nt1_nospnego_session_setup_req",
    )
    assert run(IDENTITY, *plain).session_setups == {"logon_failure": 1}
    spnego = ("smb_smbclient_nt1_negotiate_req", "smb_smbclient_nt1_session_setup_negotiate_req")
    assert run(IDENTITY, *spnego).session_setups == {"challenge_sent": 1}


def test_an_unknown_session_id_is_counted():
    counters = SmbCounters()
    session = SmbSession(
        IDENTITY,
        netbios=False,
        random_bytes=CountingRandom(),
        clock=lambda: CLOCK,
        counters=counters,
    )
    session.receive_data(golden("smb_smbclient_smb2_negotiate_req"))
    session.receive_data(golden("smb_smbclient_smb2_session_setup_auth_req"))  # its captured ID
    assert counters.session_setups == {"unknown_session": 1}
