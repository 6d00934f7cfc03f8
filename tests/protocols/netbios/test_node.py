"""One node's NBNS (NbnsNode): answers, silence, node status, defense, fast path, engines."""

from __future__ import annotations

import pytest

from protocols.errors import MalformedMessage
from protocols.netbios.claim import BNodeClaim, ClaimEvent, ClaimState
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
    ReleaseResponse,
    decode_packet,
)
from protocols.netbios.nbns_encode import (
    encode_packet,
)
from protocols.netbios.node import NbnsIdentity, NbnsNode, build_name_table
from protocols.netbios.registration import OwnedName
from protocols.netbios.wins import WinsEvent, WinsState, WinsStateChange
from tests.helpers import golden

MAC = bytes.fromhex("02005e100011")
IDENTITY = NbnsIdentity(
    cozen_name="sql01-cz1", workgroup="corp", ipv4="127.0.0.5", mac=MAC, public_name="SQL01"
)
CZ1 = NetbiosName("SQL01-CZ1")
CZ1_SMB = NetbiosName("SQL01-CZ1", 0x20)
CORP = NetbiosName("CORP")
CORP_1E = NetbiosName("CORP", 0x1E)


def ask(node: NbnsNode, message: object, *, broadcast: bool = False) -> object:
    reply = node.receive_datagram(encode_packet(message), broadcast=broadcast, now=0.0)  # type: ignore[arg-type]
    return None if reply is None else decode_packet(reply)


@pytest.fixture(params=[True, False], ids=["fast", "general"])
def node(request: pytest.FixtureRequest) -> NbnsNode:
    return NbnsNode(IDENTITY, fast_path=request.param)


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


def test_answers_captured_nmblookup_query(node: NbnsNode) -> None:
    reply = node.receive_datagram(golden("nbns_nmblookup_query"), broadcast=False, now=0.0)
    assert reply is not None
    assert decode_packet(reply) == NameQueryResponse(
        trn_id=0x1E99,
        name=CZ1,
        nm_flags=NmFlags.AA | NmFlags.RD,
        rcode=0,
        ttl=300_000,
        entries=(AddressEntry(NbFlags.ONT_B, "127.0.0.5"),),
    )


def test_group_name_answer_has_group_bit(node: NbnsNode) -> None:
    reply = ask(node, NameQueryRequest(7, CORP_1E, NmFlags.RD | NmFlags.B), broadcast=True)
    assert isinstance(reply, NameQueryResponse)
    assert reply.entries == (AddressEntry(NbFlags.G, "127.0.0.5"),)


def test_h_node_type_in_answers() -> None:
    node = NbnsNode(NbnsIdentity("SQL01-CZ1", "CORP", "127.0.0.5", MAC, node_type=NbFlags.ONT_H))
    reply = ask(node, NameQueryRequest(7, CZ1))
    assert isinstance(reply, NameQueryResponse)
    assert reply.entries[0].flags == NbFlags.ONT_H


def test_lower_case_query_answered_echoing_the_question(node: NbnsNode) -> None:
    question = NetbiosName("sql01-cz1", 0x20)
    reply = ask(node, NameQueryRequest(7, question))
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
def test_silence_for_names_not_ours(node: NbnsNode, name: NetbiosName, broadcast: bool) -> None:
    assert ask(node, NameQueryRequest(7, name), broadcast=broadcast) is None


def test_node_status_for_wildcard(node: NbnsNode) -> None:
    reply = node.receive_datagram(golden("nbns_nmblookup_node_status"), broadcast=False, now=0.0)
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
def test_node_status_for_captured_scanners(node: NbnsNode, capture: str) -> None:
    reply = node.receive_datagram(golden(f"nbns_{capture}"), broadcast=False, now=0.0)
    assert reply is not None
    message = decode_packet(reply)
    assert isinstance(message, NodeStatusResponse)
    assert message.unit_id == MAC
    assert reply[:2] == golden(f"nbns_{capture}")[:2]


def test_node_status_for_our_name_echoes_it(node: NbnsNode) -> None:
    reply = ask(node, NodeStatusRequest(3, CZ1_SMB))
    assert isinstance(reply, NodeStatusResponse)
    assert reply.name == CZ1_SMB
    assert len(reply.names) == 4


def test_node_status_for_public_name_is_silent(node: NbnsNode) -> None:
    assert ask(node, NodeStatusRequest(3, NetbiosName("SQL01"))) is None


def test_node_status_arriving_by_broadcast_is_silent(node: NbnsNode) -> None:
    assert ask(node, NodeStatusRequest(3, NetbiosName("*")), broadcast=True) is None


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
def test_defends_unique_name(node: NbnsNode, opcode: Opcode, broadcast: bool) -> None:
    reply = ask(node, _registration(CZ1_SMB, "127.0.0.8", opcode), broadcast=broadcast)
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


def test_defense_matches_nmbd_bytes(node: NbnsNode) -> None:
    # nmbd's answer to 127.0.0.8 claiming SQL01-CZ3<20>; we defend the same way.
    identity = NbnsIdentity("SQL01-CZ3", "CORP", "127.0.0.7", MAC)
    ours = NbnsNode(identity, fast_path=node.fast_path)
    request = _registration(NetbiosName("SQL01-CZ3", 0x20), "127.0.0.8")
    reply = ours.receive_datagram(encode_packet(request), broadcast=True, now=0.0)
    assert reply == golden("nbns_nmbd_act_err_registration_response")


def test_group_names_never_defended(node: NbnsNode) -> None:
    assert ask(node, _registration(CORP, "127.0.0.8"), broadcast=True) is None


def test_own_address_registration_not_defended(node: NbnsNode) -> None:
    assert ask(node, _registration(CZ1, "127.0.0.5"), broadcast=True) is None


def test_release_of_our_name_ignored(node: NbnsNode) -> None:
    release = NameReleaseRequest(1, CZ1, NmFlags.B, 0, NbFlags.ONT_B, "127.0.0.8")
    assert ask(node, release, broadcast=True) is None


@pytest.mark.parametrize(
    "capture",
    ["nmbd_query_response", "nmbd_node_status_response", "nmbd_act_err_registration_response"],
)
def test_responses_never_answered(node: NbnsNode, capture: str) -> None:
    assert node.receive_datagram(golden(f"nbns_{capture}"), broadcast=False, now=0.0) is None


def test_malformed_datagram_raises(node: NbnsNode) -> None:
    with pytest.raises(MalformedMessage):
        node.receive_datagram(b"\x00" * 5, broadcast=False, now=0.0)


# ------------------------------------------------------------------ conflicts


BROADCAST = ("127.0.0.255", 137)
WINS = ("127.0.0.53", 137)


def _claiming_node(fast_path: bool) -> tuple[NbnsNode, BNodeClaim]:
    node = NbnsNode(IDENTITY, fast_path=fast_path, broadcast=BROADCAST, trn_id=lambda: 0x100)
    assert node.claim is not None
    node.start(0.0)
    return node, node.claim


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
    node, claim = _claiming_node(fast_path)
    assert node.receive_datagram(_negative(0x101, CZ1_SMB), broadcast=False, now=0.1) is None
    assert node.conflicted == {CZ1_SMB.key()}
    assert claim.state_of(CZ1_SMB) == ClaimState.CONFLICT
    assert ask(node, NameQueryRequest(1, CZ1_SMB)) is None
    assert ask(node, _registration(CZ1_SMB, "127.0.0.8"), broadcast=True) is None
    assert ask(node, NodeStatusRequest(1, CZ1_SMB)) is None
    assert isinstance(ask(node, NameQueryRequest(1, CZ1)), NameQueryResponse)
    status = ask(node, NodeStatusRequest(1, NetbiosName("*")))
    assert isinstance(status, NodeStatusResponse)
    assert status.names[1].flags == NameFlags.ACT | NameFlags.CNF


def test_negative_response_with_other_transaction_id_ignored() -> None:
    node, _ = _claiming_node(True)
    node.receive_datagram(_negative(0x999, CZ1_SMB), broadcast=False, now=0.1)
    assert node.conflicted == set()


def test_negative_response_after_claim_ignored() -> None:
    node, claim = _claiming_node(True)
    for t in (0.25, 0.5, 0.75):
        node.handle_timer(t)
    assert claim.state_of(CZ1_SMB) == ClaimState.CLAIMED
    node.receive_datagram(_negative(0x101, CZ1_SMB), broadcast=False, now=1.0)
    assert node.conflicted == set()


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
    fast = NbnsNode(IDENTITY, fast_path=True)
    general = NbnsNode(IDENTITY, fast_path=False)
    hits = 0
    for packet in _questions():
        quick = fast.fast_answer(packet, broadcast=broadcast)
        full = general.receive_datagram(packet, broadcast=broadcast, now=0.0)
        if quick is not None:
            hits += 1
            assert quick == full
        assert fast.receive_datagram(packet, broadcast=broadcast, now=0.0) == full
    assert hits >= (12 if broadcast else 24)


def test_fast_path_serves_captured_queries() -> None:
    node = NbnsNode(IDENTITY)
    for capture in ("nmblookup_query", "nmblookup_node_status", "nbtscan_node_status"):
        assert node.fast_answer(golden(f"nbns_{capture}"), broadcast=False) is not None


def test_fast_path_leaves_lower_case_to_general_path() -> None:
    node = NbnsNode(IDENTITY)
    packet = encode_packet(NameQueryRequest(1, NetbiosName("sql01-cz1")))
    assert node.fast_answer(packet, broadcast=False) is None
    assert node.receive_datagram(packet, broadcast=False, now=0.0) is not None


def test_fast_path_ignores_responses_and_odd_counts() -> None:
    node = NbnsNode(IDENTITY)
    query = golden("nbns_nmblookup_query")
    assert node.fast_answer(bytes([query[0], query[1], 0x80]) + query[3:], broadcast=False) is None
    assert node.fast_answer(query[:5] + b"\x02" + query[6:], broadcast=False) is None
    assert node.fast_answer(query + b"\x00", broadcast=False) is None


def test_unicast_hits_are_remembered_for_the_compiled_loop() -> None:
    node = NbnsNode(IDENTITY)
    query = golden("nbns_nmblookup_query")
    reply = node.fast_answer(query, broadcast=False)
    assert reply is not None
    assert node.repeats == {query[2:]: reply[2:]}
    # Broadcast hits are not remembered: the repeats table serves the unicast socket only.
    other = encode_packet(NameQueryRequest(9, CORP, NmFlags.RD | NmFlags.B))
    assert node.fast_answer(other, broadcast=True) is not None
    assert len(node.repeats) == 1
    # Misses leave it alone.
    assert node.fast_answer(query + b"\x00", broadcast=False) is None
    assert len(node.repeats) == 1
    # A repeat under another ID is served from the repeats table.
    assert node.fast_answer(b"\x42\x42" + query[2:], broadcast=False) == b"\x42\x42" + reply[2:]


def test_mark_conflict_ignores_names_not_ours() -> None:
    node = NbnsNode(IDENTITY)
    node.mark_conflict(NetbiosName("SQL01").key())
    assert node.conflicted == set()


def test_node_status_in_other_scope_is_silent(node: NbnsNode) -> None:
    assert ask(node, NodeStatusRequest(3, NetbiosName("*", 0, "other"))) is None


def test_scoped_node_answers_only_its_scope() -> None:
    identity = NbnsIdentity("SQL01-CZ1", "CORP", "127.0.0.5", MAC, scope="corp.example")
    node = NbnsNode(identity)
    assert ask(node, NameQueryRequest(1, CZ1)) is None
    reply = ask(node, NameQueryRequest(1, NetbiosName("SQL01-CZ1", 0, "CORP.EXAMPLE")))
    assert isinstance(reply, NameQueryResponse)
    assert reply.name.scope == "CORP.EXAMPLE"


# ------------------------------------------------------------------ engines


def _wins_node(first_trn_id: int = 0x200) -> NbnsNode:
    identity = NbnsIdentity("SQL01-CZ1", "CORP", "127.0.0.5", MAC, node_type=NbFlags.ONT_H)
    node = NbnsNode(identity, wins=WINS, trn_id=lambda: first_trn_id)
    node.start(0.0)
    return node


def _wins_answer(request: bytes, rcode: int = 0, ttl: int = 600) -> bytes:
    sent = decode_packet(request)
    assert isinstance(sent, NameRegistrationRequest | NameReleaseRequest)
    if isinstance(sent, NameReleaseRequest):
        return encode_packet(
            ReleaseResponse(sent.trn_id, sent.name, NmFlags.AA, 0, 0, sent.flags, sent.address)
        )
    flags = NmFlags.AA | NmFlags.RA
    answer = RegistrationResponse(
        sent.trn_id, sent.opcode, sent.name, flags, rcode, ttl, sent.flags, sent.address
    )
    return encode_packet(answer)


def test_engines_exist_only_when_asked_for() -> None:
    assert NbnsNode(IDENTITY).claim is None and NbnsNode(IDENTITY).wins is None
    assert NbnsNode(IDENTITY).finished() and NbnsNode(IDENTITY).next_timer() is None
    with pytest.raises(ValueError, match="trn_id"):
        NbnsNode(IDENTITY, broadcast=BROADCAST)


def test_start_broadcasts_one_claim_per_name() -> None:
    node, claim = _claiming_node(True)
    assert node.needs_transmit
    sent = node.datagrams_to_send()
    assert not node.needs_transmit and node.datagrams_to_send() == []
    assert [destination for _, destination in sent] == [BROADCAST] * 4
    requests = [decode_packet(data) for data, _ in sent]
    assert [(r.trn_id, r.name) for r in requests] == [  # type: ignore[union-attr]
        (0x100, CZ1),
        (0x101, CZ1_SMB),
        (0x102, CORP),
        (0x103, CORP_1E),
    ]
    assert all(isinstance(r, NameRegistrationRequest) for r in requests)
    assert claim.state_of(CZ1) == ClaimState.CLAIMING
    assert node.next_timer() == 0.25


def test_timer_repeats_the_claim_then_claims() -> None:
    node, claim = _claiming_node(True)
    node.datagrams_to_send()
    node.handle_timer(0.25)
    assert node.needs_transmit and len(node.datagrams_to_send()) == 4
    for t in (0.5, 0.75):
        node.handle_timer(t)
    assert claim.state_of(CZ1) == ClaimState.CLAIMED
    assert node.next_timer() is None and node.finished()


def test_conflict_is_an_event_and_silences_the_name() -> None:
    node, _ = _claiming_node(True)
    node.datagrams_to_send()
    assert node.receive_datagram(_negative(0x100, CZ1), broadcast=False, now=0.1) is None
    assert node.needs_transmit
    assert node.events() == [ClaimEvent(CZ1, Rcode.ACT_ERR, "127.0.0.5")]
    assert node.events() == []
    assert ask(node, NameQueryRequest(1, CZ1)) is None
    assert node.status()["conflicts"] == ["SQL01-CZ1<00>"]


def test_answering_requests_never_runs_the_engines() -> None:
    node, _ = _claiming_node(True)
    node.datagrams_to_send()
    for packet in _questions():
        node.receive_datagram(packet, broadcast=False, now=0.1)
    assert not node.needs_transmit and node.events() == []


def test_wins_registration_events() -> None:
    node = _wins_node()
    sent = node.datagrams_to_send()
    assert [destination for _, destination in sent] == [WINS] * 4
    assert node.events() == []  # registering is a passing state
    node.receive_datagram(_wins_answer(sent[0][0]), broadcast=False, now=0.1)
    assert node.events() == [WinsStateChange(CZ1, WinsState.REGISTERED, 600)]
    node.receive_datagram(_wins_answer(sent[0][0]), broadcast=False, now=0.2)
    assert node.events() == []  # no change, no event
    assert node.next_timer() == 5.0  # the other names' resend


def test_wins_refusal_marks_conflict() -> None:
    node = _wins_node()
    sent = node.datagrams_to_send()
    refusal = _wins_answer(sent[1][0], rcode=Rcode.ACT_ERR, ttl=0)
    assert node.receive_datagram(refusal, broadcast=False, now=0.1) is None
    assert node.events() == [
        WinsEvent(CZ1_SMB, Rcode.ACT_ERR),
        WinsStateChange(CZ1_SMB, WinsState.CONFLICT, None),
    ]
    assert node.conflicted == {CZ1_SMB.key()}
    assert ask(node, NameQueryRequest(1, CZ1_SMB)) is None


def test_release_stops_answering_and_waits_for_the_server() -> None:
    node = _wins_node()
    for data, _ in node.datagrams_to_send():
        node.receive_datagram(_wins_answer(data), broadcast=False, now=0.1)
    node.events()
    assert node.fast_answer(golden("nbns_nmblookup_query"), broadcast=False) is not None
    node.release(1.0)
    assert node.repeats == {}
    assert ask(node, NameQueryRequest(1, CZ1)) is None
    assert ask(node, NodeStatusRequest(1, NetbiosName("*"))) is None
    assert ask(node, _registration(CZ1, "127.0.0.8")) is None
    releases = node.datagrams_to_send()
    assert len(releases) == 4 and not node.finished()
    for data, _ in releases:  # the responses still reach the engines
        assert node.receive_datagram(_wins_answer(data), broadcast=False, now=1.1) is None
    assert node.finished() and node.next_timer() is None
    released = WinsState.RELEASED
    assert node.events() == [WinsStateChange(e.name, released, 600) for e in node.table]


def test_claim_release_runs_out_on_the_timer() -> None:
    node, claim = _claiming_node(True)
    for t in (0.25, 0.5, 0.75):
        node.handle_timer(t)
    node.datagrams_to_send()
    node.release(1.0)
    assert all(
        isinstance(decode_packet(d), NameReleaseRequest) for d, _ in node.datagrams_to_send()
    )
    for t in (1.25, 1.5):
        node.handle_timer(t)
        assert not node.finished()
    node.handle_timer(1.75)
    assert node.finished() and claim.state_of(CZ1) == ClaimState.RELEASED


def test_status_shape() -> None:
    node = NbnsNode(IDENTITY, broadcast=BROADCAST, wins=WINS, trn_id=lambda: 1)
    assert node.status() == {
        "cozen_name": "sql01-cz1",
        "address": "127.0.0.5",
        "broadcast": "127.0.0.255",
        "names": [
            {
                "name": str(e.name),
                "group": e.group,
                "conflict": False,
                "claim": "idle",
                "wins": "idle",
            }
            for e in node.table
        ],
        "conflicts": [],
    }
    bare = NbnsNode(IDENTITY).status()
    assert bare["broadcast"] is None
    assert bare["names"][0] == {"name": "SQL01-CZ1<00>", "group": False, "conflict": False}  # type: ignore[index]
