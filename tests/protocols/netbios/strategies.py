"""Hypothesis strategies for NetBIOS names and NBNS messages."""

from __future__ import annotations

from hypothesis import strategies as st

from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    AddressEntry,
    NameFlags,
    NameQueryRequest,
    NameQueryResponse,
    NameRegistrationRequest,
    NameReleaseRequest,
    NbFlags,
    NbnsMessage,
    NmFlags,
    NodeStatusEntry,
    NodeStatusRequest,
    NodeStatusResponse,
    Opcode,
    RegistrationResponse,
    ReleaseResponse,
    RRType,
    WaitForAck,
)

LATIN1 = st.characters(min_codepoint=0, max_codepoint=0xFF)


def _decodable(text: str) -> bool:
    # Trailing spaces are padding, and "*" followed only by NULs is the wildcard.
    wildcard_like = text.startswith("*") and len(text) > 1 and not text[1:].strip("\x00")
    return not text.endswith(" ") and not wildcard_like


name_text = st.text(LATIN1, min_size=1, max_size=15).filter(_decodable)
label = st.text(
    st.characters(min_codepoint=0, max_codepoint=0xFF, exclude_characters="."),
    min_size=1,
    max_size=20,
)
scopes = st.lists(label, max_size=4).map(".".join)
netbios_names = st.builds(NetbiosName, name_text, st.integers(0, 255), scopes)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
rcodes = st.integers(0, 15)
nm_flags = st.integers(0, 0x7F).map(NmFlags)
nb_flags = u16.map(NbFlags)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
entries = st.builds(AddressEntry, nb_flags, ipv4)
status_entries = st.builds(
    NodeStatusEntry,
    st.text(LATIN1, max_size=15).filter(lambda s: not s.endswith(" ")),
    st.integers(0, 255),
    u16.map(NameFlags),
)
registration_opcodes = st.sampled_from(
    [Opcode.REGISTRATION, Opcode.REFRESH, Opcode.REFRESH_ALT, Opcode.MULTIHOMED_REGISTRATION]
)

messages: st.SearchStrategy[NbnsMessage] = st.one_of(
    st.builds(NameQueryRequest, u16, netbios_names, nm_flags),
    st.builds(NodeStatusRequest, u16, netbios_names, nm_flags),
    st.builds(
        NameQueryResponse,
        u16,
        netbios_names,
        nm_flags,
        rcodes,
        u32,
        st.lists(entries, max_size=5).map(tuple),
        st.sampled_from([RRType.NB, RRType.NULL]),
    ),
    st.builds(
        NodeStatusResponse,
        u16,
        netbios_names,
        nm_flags,
        st.lists(status_entries, max_size=8).map(tuple),
        st.binary(max_size=60),
        rcodes,
        u32,
    ),
    st.builds(
        NameRegistrationRequest,
        u16,
        registration_opcodes,
        netbios_names,
        nm_flags,
        u32,
        nb_flags,
        ipv4,
    ),
    st.builds(NameReleaseRequest, u16, netbios_names, nm_flags, u32, nb_flags, ipv4),
    st.builds(
        RegistrationResponse,
        u16,
        registration_opcodes,
        netbios_names,
        nm_flags,
        rcodes,
        u32,
        nb_flags,
        ipv4,
    ),
    st.builds(ReleaseResponse, u16, netbios_names, nm_flags, rcodes, u32, nb_flags, ipv4),
    st.builds(
        WaitForAck,
        u16,
        netbios_names,
        nm_flags,
        u32,
        u16,
        st.sampled_from([RRType.NB, RRType.NULL]),
    ),
)
