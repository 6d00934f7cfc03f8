"""Per-node NBNS engine: answers, silence, node status, defense, fast path."""

from __future__ import annotations

import pytest

from protocols.errors import MalformedMessage
from protocols.netbios.claim import BNodeClaim, ClaimState
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    AddressEntry,
    NameFlags,
    NameQueryRequest,
    NameQueryResponse,
    NameRegistrationRequest,
    NameReleaseRequest,
    NbFlags,
    NmFlags,
    NodeStatusEntry,
    NodeStatusRequest,
    NodeStatusResponse,
    Opcode,
    Rcode,
    RegistrationResponse,
    decode_packet,
)
from protocols.netbios.nbns_encode import (
    encode_packet,
)
from protocols.netbios.node import (
    NbnsIdentity,
    NodeState,
    build_name_table,
    fast_answer,
    handle_datagram,
)
from protocols.netbios.registration import OwnedName
from tests.helpers import golden

MAC = bytes.fromhex("02005e100011")
IDENTITY = NbnsIdentity(
    cozen_name="sql01-cz1", workgroup="corp", ipv4="127.0.0.5", mac=MAC, public_name="SQL01"
)
CZ1 = NetbiosName("SQL01-CZ1")
CZ1_SMB = NetbiosName("SQL01-CZ1", 0x20)
CORP = NetbiosName("CORP")
CORP_1E = NetbiosName("CORP", 0x1E)


def ask(state: NodeState, message: object, *, broadcast: bool = False) -> object:
    reply = handle_datagram(state, encode_packet(message), broadcast=broadcast, now=0.0)  # type: ignore[arg-type]
    return None if reply is None else decode_packet(reply)


@pytest.fixture(params=[True, False], ids=["fast", "general"])
def state(request: pytest.FixtureRequest) -> NodeState:
    return NodeState(IDENTITY, fast_path=request.param)


def test_name_table() -> None:
    assert build_name_table(IDENTITY) == (
        OwnedName(CZ1, False),
        OwnedName(CZ1_SMB, False),
        OwnedName(CORP, True),
        OwnedName(CORP_1E, True),
    )


def test_name_table_without_smb() -> None:
    identity = NbnsIdentity("SQL01-CZ1", "CORP", "127.0.0.5", MAC, serve_smb=False)
    assert CZ1_SMB not in [entry.name for entry in build_name_table(identity)]


def test_name_table_refuses_public_name() -> None:
    with pytest.raises(ValueError, match="public name"):
        build_name_table(NbnsIdentity("sql01", "CORP", "127.0.0.5", MAC, public_name="SQL01"))


def test_answers_captured_nmblookup_query(state: NodeState) -> None:
    reply = handle_datagram(state, golden("nbns_nmblookup_query"), broadcast=False, now=0.0)
    assert reply is not None
    assert decode_packet(reply) == NameQueryResponse(
        trn_id=0x1E99,
        name=CZ1,
        nm_flags=NmFlags.AA | NmFlags.RD,
        rcode=0,
        ttl=300_000,
        entries=(AddressEntry(NbFlags.ONT_B, "127.0.0.5"),),
    )


def test_group_name_answer_has_group_bit(state: NodeState) -> None:
    reply = ask(state, NameQueryRequest(7, CORP_1E, NmFlags.RD | NmFlags.B), broadcast=True)
    assert isinstance(reply, NameQueryResponse)
    assert reply.entries == (AddressEntry(NbFlags.G, "127.0.0.5"),)


def test_h_node_type_in_answers() -> None:
    state = NodeState(NbnsIdentity("SQL01-CZ1", "CORP", "127.0.0.5", MAC, node_type=NbFlags.ONT_H))
    reply = ask(state, NameQueryRequest(7, CZ1))
    assert isinstance(reply, NameQueryResponse)
    assert reply.entries[0].flags == NbFlags.ONT_H


def test_lower_case_query_answered_echoing_the_question(state: NodeState) -> None:
    question = NetbiosName("sql01-cz1", 0x20)
    reply = ask(state, NameQueryRequest(7, question))
    assert isinstance(reply, NameQueryResponse)
    assert reply.name == question


@pytest.mark.parametrize(
    "name",
    [
        NetbiosName("SQL01"),  # the public name: never answered
        NetbiosName("SQL01", 0x20),
        NetbiosName("SQL01-CZ2"),
        NetbiosName("SQL01-CZ1", 0x03),
        NetbiosName("SQL01-CZ1", 0x00, "other.scope"),
        NetbiosName("*"),
    ],
)
@pytest.mark.parametrize("broadcast", [True, False])
def test_silence_for_names_not_ours(state: NodeState, name: NetbiosName, broadcast: bool) -> None:
    assert ask(state, NameQueryRequest(7, name), broadcast=broadcast) is None


def test_node_status_for_wildcard(state: NodeState) -> None:
    reply = handle_datagram(state, golden("nbns_nmblookup_node_status"), broadcast=False, now=0.0)
    assert reply is not None
    assert decode_packet(reply) == NodeStatusResponse(
        trn_id=0x2CB5,
        name=NetbiosName("*"),
        nm_flags=NmFlags.AA,
        names=(
            NodeStatusEntry("SQL01-CZ1", 0x00, NameFlags.ACT),
            NodeStatusEntry("SQL01-CZ1", 0x20, NameFlags.ACT),
            NodeStatusEntry("CORP", 0x00, NameFlags.G | NameFlags.ACT),
            NodeStatusEntry("CORP", 0x1E, NameFlags.G | NameFlags.ACT),
        ),
        statistics=MAC + bytes(40),
    )


@pytest.mark.parametrize(
    "capture", ["nbtscan_node_status", "nmap_nbstat", "nmap_nbstat_bcast_flag"]
)
def test_node_status_for_captured_scanners(state: NodeState, capture: str) -> None:
    reply = handle_datagram(state, golden(f"nbns_{capture}"), broadcast=False, now=0.0)
    assert reply is not None
    message = decode_packet(reply)
    assert isinstance(message, NodeStatusResponse)
    assert message.unit_id == MAC
    assert reply[:2] == golden(f"nbns_{capture}")[:2]


def test_node_status_for_our_name_echoes_it(state: NodeState) -> None:
    reply = ask(state, NodeStatusRequest(3, CZ1_SMB))
    assert isinstance(reply, NodeStatusResponse)
    assert reply.name == CZ1_SMB
    assert len(reply.names) == 4


def test_node_status_for_public_name_is_silent(state: NodeState) -> None:
    assert ask(state, NodeStatusRequest(3, NetbiosName("SQL01"))) is None


def test_node_status_arriving_by_broadcast_is_silent(state: NodeState) -> None:
    assert ask(state, NodeStatusRequest(3, NetbiosName("*")), broadcast=True) is None


def _registration(
    name: NetbiosName, address: str, opcode: Opcode = Opcode.REGISTRATION
) -> NameRegistrationRequest:
    return NameRegistrationRequest(
        0x5E97, opcode, name, NmFlags.RD | NmFlags.B, 0, NbFlags.ONT_B, address
    )


@pytest.mark.parametrize(
    "opcode",
    [Opcode.REGISTRATION, Opcode.REFRESH, Opcode.REFRESH_ALT, Opcode.MULTIHOMED_REGISTRATION],
)
@pytest.mark.parametrize("broadcast", [True, False])
def test_defends_unique_name(state: NodeState, opcode: Opcode, broadcast: bool) -> None:
    reply = ask(state, _registration(CZ1_SMB, "127.0.0.8", opcode), broadcast=broadcast)
    assert reply == RegistrationResponse(
        trn_id=0x5E97,
        opcode=opcode,
        name=CZ1_SMB,
        nm_flags=NmFlags.AA | NmFlags.RD | NmFlags.RA,
        rcode=Rcode.ACT_ERR,
        ttl=0,
        flags=NbFlags.ONT_B,
        address="127.0.0.8",
    )


def test_defense_matches_nmbd_bytes(state: NodeState) -> None:
    # nmbd's answer to 127.0.0.8 claiming SQL01-CZ3<20>; we defend the same way.
    identity = NbnsIdentity("SQL01-CZ3", "CORP", "127.0.0.7", MAC)
    ours = NodeState(identity, fast_path=state.fast_path)
    request = _registration(NetbiosName("SQL01-CZ3", 0x20), "127.0.0.8")
    reply = handle_datagram(ours, encode_packet(request), broadcast=True, now=0.0)
    assert reply == golden("nbns_nmbd_act_err_registration_response")


def test_group_names_never_defended(state: NodeState) -> None:
    assert ask(state, _registration(CORP, "127.0.0.8"), broadcast=True) is None


def test_own_address_registration_not_defended(state: NodeState) -> None:
    assert ask(state, _registration(CZ1, "127.0.0.5"), broadcast=True) is None


def test_release_of_our_name_ignored(state: NodeState) -> None:
    release = NameReleaseRequest(1, CZ1, NmFlags.B, 0, NbFlags.ONT_B, "127.0.0.8")
    assert ask(state, release, broadcast=True) is None


@pytest.mark.parametrize(
    "capture",
    ["nmbd_query_response", "nmbd_node_status_response", "nmbd_act_err_registration_response"],
)
def test_responses_never_answered(state: NodeState, capture: str) -> None:
    assert handle_datagram(state, golden(f"nbns_{capture}"), broadcast=False, now=0.0) is None


def test_malformed_datagram_raises(state: NodeState) -> None:
    with pytest.raises(MalformedMessage):
        handle_datagram(state, b"\x00" * 5, broadcast=False, now=0.0)


# ------------------------------------------------------------------ conflicts


def _claiming_state(fast_path: bool) -> tuple[NodeState, BNodeClaim]:
    state = NodeState(IDENTITY, fast_path=fast_path)
    claim = BNodeClaim([e for e in state.table], "127.0.0.5", first_trn_id=0x100)
    state.engines.append(claim)
    claim.start(0.0)
    return state, claim


def _negative(trn_id: int, name: NetbiosName) -> bytes:
    return encode_packet(
        RegistrationResponse(
            trn_id,
            Opcode.REGISTRATION,
            name,
            NmFlags.AA | NmFlags.RD | NmFlags.RA,
            Rcode.ACT_ERR,
            0,
            NbFlags.ONT_B,
            "127.0.0.5",
        )
    )


@pytest.mark.parametrize("fast_path", [True, False])
def test_negative_response_while_claiming_marks_conflict(fast_path: bool) -> None:
    state, claim = _claiming_state(fast_path)
    assert handle_datagram(state, _negative(0x101, CZ1_SMB), broadcast=False, now=0.1) is None
    assert state.conflicted == {CZ1_SMB.key()}
    assert claim.state_of(CZ1_SMB) == ClaimState.CONFLICT
    assert ask(state, NameQueryRequest(1, CZ1_SMB)) is None
    assert ask(state, _registration(CZ1_SMB, "127.0.0.8"), broadcast=True) is None
    assert ask(state, NodeStatusRequest(1, CZ1_SMB)) is None
    assert isinstance(ask(state, NameQueryRequest(1, CZ1)), NameQueryResponse)
    status = ask(state, NodeStatusRequest(1, NetbiosName("*")))
    assert isinstance(status, NodeStatusResponse)
    assert status.names[1].flags == NameFlags.ACT | NameFlags.CNF


def test_negative_response_with_other_transaction_id_ignored() -> None:
    state, _ = _claiming_state(True)
    handle_datagram(state, _negative(0x999, CZ1_SMB), broadcast=False, now=0.1)
    assert state.conflicted == set()


def test_negative_response_after_claim_ignored() -> None:
    state, claim = _claiming_state(True)
    for t in (0.25, 0.5, 0.75):
        claim.handle_timer(t)
    handle_datagram(state, _negative(0x101, CZ1_SMB), broadcast=False, now=1.0)
    assert state.conflicted == set()


# ------------------------------------------------------------------ fast path


def _questions() -> list[bytes]:
    names = [CZ1, CZ1_SMB, CORP, CORP_1E, NetbiosName("SQL01"), NetbiosName("OTHER", 0x20)]
    variants = names + [NetbiosName(n.name.lower(), n.suffix) for n in names]
    packets = []
    for i, name in enumerate(variants):
        for nm_flags in (NmFlags.NONE, NmFlags.RD, NmFlags.RD | NmFlags.B):
            packets.append(encode_packet(NameQueryRequest(i, name, nm_flags)))
            packets.append(encode_packet(NodeStatusRequest(i, name, nm_flags)))
    packets.append(encode_packet(NodeStatusRequest(0xABCD, NetbiosName("*"))))
    return packets


@pytest.mark.parametrize("broadcast", [True, False])
def test_fast_path_equals_general_path(broadcast: bool) -> None:
    fast = NodeState(IDENTITY, fast_path=True)
    general = NodeState(IDENTITY, fast_path=False)
    hits = 0
    for packet in _questions():
        quick = fast_answer(fast, packet, broadcast=broadcast)
        full = handle_datagram(general, packet, broadcast=broadcast, now=0.0)
        if quick is not None:
            hits += 1
            assert quick == full
        assert handle_datagram(fast, packet, broadcast=broadcast, now=0.0) == full
    assert hits >= (12 if broadcast else 24)


def test_fast_path_serves_captured_queries() -> None:
    state = NodeState(IDENTITY)
    for capture in ("nmblookup_query", "nmblookup_node_status", "nbtscan_node_status"):
        assert fast_answer(state, golden(f"nbns_{capture}"), broadcast=False) is not None


def test_fast_path_leaves_lower_case_to_general_path() -> None:
    state = NodeState(IDENTITY)
    packet = encode_packet(NameQueryRequest(1, NetbiosName("sql01-cz1")))
    assert fast_answer(state, packet, broadcast=False) is None
    assert handle_datagram(state, packet, broadcast=False, now=0.0) is not None


def test_fast_path_ignores_responses_and_odd_counts() -> None:
    state = NodeState(IDENTITY)
    query = golden("nbns_nmblookup_query")
    assert (
        fast_answer(state, bytes([query[0], query[1], 0x80]) + query[3:], broadcast=False) is None
    )
    assert fast_answer(state, query[:5] + b"\x02" + query[6:], broadcast=False) is None
    assert fast_answer(state, query + b"\x00", broadcast=False) is None


def test_unicast_hits_are_remembered_for_the_compiled_loop() -> None:
    state = NodeState(IDENTITY)
    query = golden("nbns_nmblookup_query")
    reply = fast_answer(state, query, broadcast=False)
    assert reply is not None
    assert state.repeats == {query[2:]: reply[2:]}
    # Broadcast hits are not remembered: the repeats table serves the unicast socket only.
    other = encode_packet(NameQueryRequest(9, CORP, NmFlags.RD | NmFlags.B))
    assert fast_answer(state, other, broadcast=True) is not None
    assert len(state.repeats) == 1
    # Misses leave it alone.
    assert fast_answer(state, query + b"\x00", broadcast=False) is None
    assert len(state.repeats) == 1
    # A repeat under another ID is served from the repeats table.
    assert fast_answer(state, b"\x42\x42" + query[2:], broadcast=False) == b"\x42\x42" + reply[2:]


def test_mark_conflict_ignores_names_not_ours() -> None:
    state = NodeState(IDENTITY)
    state.mark_conflict(NetbiosName("SQL01").key())
    assert state.conflicted == set()


def test_node_status_in_other_scope_is_silent(state: NodeState) -> None:
    assert ask(state, NodeStatusRequest(3, NetbiosName("*", 0, "other"))) is None


def test_scoped_node_answers_only_its_scope() -> None:
    identity = NbnsIdentity("SQL01-CZ1", "CORP", "127.0.0.5", MAC, scope="corp.example")
    state = NodeState(identity)
    assert ask(state, NameQueryRequest(1, CZ1)) is None
    reply = ask(state, NameQueryRequest(1, NetbiosName("SQL01-CZ1", 0, "CORP.EXAMPLE")))
    assert isinstance(reply, NameQueryResponse)
    assert reply.name.scope == "CORP.EXAMPLE"
