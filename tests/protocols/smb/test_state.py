"""The connection state table: every allowed pair, every missing pair closes."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from protocols.smb import _state, smb1, smb2
from protocols.smb import negotiate as neg
from protocols.smb._state import TRANSITIONS, Event, State
from tests.helpers import golden
from tests.protocols.smb.smb_helpers import new_session

ALLOWED = [(s, e, n) for s, row in TRANSITIONS.items() for e, n in row.items()]
MISSING = [(s, e) for s, e in itertools.product(State, Event) if e not in TRANSITIONS.get(s, {})]


def test_table_has_a_row_for_every_state():
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(("state", "event", "after"), ALLOWED)
def test_allowed_pair(state, event, after):
    assert _state.advance(state, event) is after


@pytest.mark.parametrize(("state", "event"), MISSING)
def test_missing_pair_closes(state, event):
    assert _state.advance(state, event) is None


def test_closed_is_final():
    assert all(_state.advance(State.CLOSED, event) is None for event in Event)


def test_every_event_is_used():
    assert {event for _, event, _ in ALLOWED} == set(Event)


def test_initial_state():
    assert _state.initial(netbios=True) is State.AWAIT_SESSION_REQUEST
    assert _state.initial(netbios=False) is State.AWAIT_NEGOTIATE


FRAMES = [
    "smb_impacket_nbss_session_request",
    "smb_smbclient_nbss_session_request",
    "smb_smbclient_smb2_negotiate_req",
    "smb_impacket_multiprotocol_negotiate_req",
    "smb_impacket_smb2_negotiate_req",
    "smb_nmap_smb2_single_dialect_negotiate_req",
    "smb_impacket_smb1_negotiate_req",
    "smb_nmap_smb1_negotiate_req",
    "smb_smbclient_smb2_session_setup_negotiate_req",
    "smb_impacket_smb1_session_setup_negotiate_req",
    "smb_nmap_smb1_session_setup_anonymous_req",
]
REACHABLE = {(s, n) for s, _, n in ALLOWED} | {(s, s) for s in State}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAMES), max_size=6), st.booleans())
def test_session_moves_only_along_the_table(names, netbios):
    session = new_session(netbios=netbios)
    for name in names:
        before = session.state
        session.receive_data(golden(name))
        assert (before, session.state) in REACHABLE or session.state is State.CLOSED


def _direct(message):
    return nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, message, direct=True)


def _request(called):
    return nbss.encode_session_request(
        nbss.SessionRequest(NetbiosName(called, 0x20), NetbiosName("C", 0))
    )


def _malformed_smb2_negotiate():
    raw = bytearray(golden("smb_smbclient_smb2_negotiate_req"))
    raw[4 + 64] = 35  # StructureSize
    return bytes(raw)


def _smb1_negotiate(*dialects):
    header = smb1.Header(smb1.Command.NEGOTIATE, flags2=smb1.Flags2.EXTENDED_SECURITY)
    return _direct(smb1.encode_negotiate_request(smb1.NegotiateRequest(header, dialects)))


def _smb2_negotiate_unknown_dialect():
    header = smb2.Header(smb2.Command.NEGOTIATE)
    request = neg.NegotiateRequest(header, (0x0999,), 1, 0, bytes(16))
    return _direct(neg.encode_negotiate_request(request))


#: one frame that a connection reads as each event
EVENT_FRAMES = {
    Event.NBSS_ACCEPTED: lambda: _request("SQL01-CZ2"),
    Event.NBSS_REFUSED: lambda: _request("SOMEONE-ELSE"),
    # a frame type no client sends: premature on 139, nothing else anywhere
    Event.NBSS_PREMATURE: nbss.encode_positive_response,
    Event.SMB1_NEGOTIATE_TO_WILDCARD: lambda: golden("smb_impacket_multiprotocol_negotiate_req"),
    Event.SMB1_NEGOTIATE_TO_SMB202: lambda: _smb1_negotiate("NT LM 0.12", "SMB 2.002"),
    Event.SMB1_NEGOTIATE_NT1: lambda: golden("smb_impacket_smb1_negotiate_req"),
    Event.SMB2_NEGOTIATE: lambda: golden("smb_smbclient_smb2_negotiate_req"),
    Event.SMB2_NEGOTIATE_MALFORMED: _malformed_smb2_negotiate,
    Event.NEGOTIATE_REFUSED: _smb2_negotiate_unknown_dialect,
    Event.SMB1_REQUEST: lambda: _direct(
        smb1.encode_echo_request(smb1.EchoRequest(smb1.Header(smb1.Command.ECHO), 1, b"x"))
    ),
    Event.SMB2_REQUEST: lambda: _direct(
        smb2.encode_header(smb2.Header(smb2.Command.ECHO)) + b"\x04\x00\x00\x00"
    ),
}

#: how a fresh connection reaches each state: netbios, then the events on the way
PATHS = {
    State.AWAIT_SESSION_REQUEST: (True, []),
    State.AWAIT_NEGOTIATE: (False, []),
    State.AWAIT_SMB2_NEGOTIATE: (False, [Event.SMB1_NEGOTIATE_TO_WILDCARD]),
    State.SMB1: (False, [Event.SMB1_NEGOTIATE_NT1]),
    State.SMB2: (False, [Event.SMB2_NEGOTIATE]),
    State.CLOSED: (True, [Event.NBSS_REFUSED]),
}


def _session_in(state):
    netbios, events = PATHS[state]
    session = new_session(netbios=netbios)
    for event in events:
        session.receive_data(EVENT_FRAMES[event]())
    assert session.state is state
    return session


def test_every_event_has_a_frame():
    assert set(EVENT_FRAMES) == set(Event)


@pytest.mark.parametrize(("state", "event", "after"), ALLOWED)
def test_connection_follows_allowed_pair(state, event, after):
    session = _session_in(state)
    reply = session.receive_data(EVENT_FRAMES[event]())
    assert reply != b""
    assert session.state is after


#: what Windows sends on 139 for any frame before the SESSION REQUEST (rule 1)
NEGATIVE_UNSPECIFIED = bytes.fromhex("830000018f")


@pytest.mark.parametrize(("state", "event"), MISSING)
def test_connection_closes_on_missing_pair(state, event):
    session = _session_in(state)
    reply = session.receive_data(EVENT_FRAMES[event]())
    premature = state is State.AWAIT_SESSION_REQUEST
    assert reply == (NEGATIVE_UNSPECIFIED if premature else b"")
    assert session.closed


def test_nmap_smbprogneg_probe_on_139_gets_windows_negative_response():
    # nmap-service-probes: "match netbios-ssn m|^\x83\0\0\x01\x8f$| p/Microsoft Windows ..."
    session = new_session(netbios=True)
    assert session.receive_data(golden("smb_nmap_smbprogneg_probe")) == NEGATIVE_UNSPECIFIED
    assert session.closed
