"""Hypothesis properties of the SPNEGO codec and its DER layer: round trips and totality."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.auth import _der, spnego
from protocols.auth.spnego import OID_SPNEGO, NegState, NegTokenInit, NegTokenResp
from protocols.errors import MalformedMessage
from tests.helpers import goldens

GOLDENS = goldens("spnego_")
SETTINGS = settings(max_examples=300, deadline=None)


@st.composite
def oids(draw: st.DrawFn) -> str:
    first = draw(st.integers(0, 2))
    second = draw(st.integers(0, 39) if first < 2 else st.integers(0, 10**6))
    rest = draw(st.lists(st.integers(0, 2**63 - 1), max_size=8))
    return ".".join(str(arc) for arc in (first, second, *rest))


tokens = st.none() | st.binary(max_size=300)
mech_lists = st.lists(oids(), max_size=4).map(tuple)


def decodes_or_rejects(blob: bytes) -> None:
    """The decoder returns a token or raises MalformedMessage, nothing else."""
    try:
        result = spnego.decode_client_token(blob)
    except MalformedMessage as error:
        assert error.protocol == "spnego"
        return
    assert isinstance(result, (NegTokenInit, NegTokenResp, bytes))


PRIMITIVE_TAGS = [0x02, 0x03, 0x04, 0x06, 0x0A, 0x1B, 0x80, 0x1F]
CONSTRUCTED_TAGS = [0x30, 0x60, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4]
der_trees = st.recursive(
    st.tuples(st.sampled_from(PRIMITIVE_TAGS), st.binary(max_size=12)).map(
        lambda pair: _der.tlv(*pair)
    ),
    lambda children: st.tuples(
        st.sampled_from(CONSTRUCTED_TAGS), st.lists(children, max_size=3)
    ).map(lambda pair: _der.tlv(pair[0], b"".join(pair[1]))),
    max_leaves=12,
)


@SETTINGS
@given(oids())
def test_oid_round_trip(oid: str) -> None:
    assert _der.decode_oid(_der.encode_oid(oid)) == oid


@SETTINGS
@given(st.binary(min_size=1, max_size=30))
def test_oid_decode_total_and_canonical(data: bytes) -> None:
    try:
        oid = _der.decode_oid(data)
    except MalformedMessage:
        return
    assert _der.encode_oid(oid) == data


@SETTINGS
@given(mech_lists, tokens)
def test_neg_token_init_round_trip(mechs: tuple[str, ...], token: bytes | None) -> None:
    blob = spnego.encode_neg_token_init(mechs, token)
    assert spnego.decode_client_token(blob) == NegTokenInit(mechs, token)


@SETTINGS
@given(mech_lists)
def test_neg_token_init2_decodes_to_its_mechs(mechs: tuple[str, ...]) -> None:
    blob = spnego.encode_neg_token_init2(mechs)
    assert spnego.decode_client_token(blob) == NegTokenInit(mechs, None)


@SETTINGS
@given(st.none() | st.sampled_from(NegState), st.none() | oids(), tokens, tokens)
def test_neg_token_resp_round_trip(
    state: NegState | None, mech: str | None, token: bytes | None, mic: bytes | None
) -> None:
    blob = spnego.encode_neg_token_resp(
        state, supported_mech=mech, response_token=token, mech_list_mic=mic
    )
    assert spnego.decode_client_token(blob) == NegTokenResp(state, mech, token, mic)


@SETTINGS
@given(st.binary(max_size=200))
def test_decode_total_on_random_bytes(blob: bytes) -> None:
    decodes_or_rejects(blob)


@SETTINGS
@given(st.sampled_from([0x60, 0xA1]), st.binary(max_size=200))
def test_decode_total_on_random_bodies(first: int, body: bytes) -> None:
    decodes_or_rejects(_der.tlv(first, body))


@SETTINGS
@given(der_trees)
def test_decode_total_on_random_der_trees(tree: bytes) -> None:
    decodes_or_rejects(_der.tlv(0xA1, tree))
    spnego_oid = _der.tlv(0x06, _der.encode_oid(OID_SPNEGO))
    decodes_or_rejects(_der.tlv(0x60, spnego_oid + _der.tlv(0xA0, tree)))


def test_decode_total_on_every_truncation() -> None:
    for golden in GOLDENS:
        for end in range(len(golden)):
            decodes_or_rejects(golden[:end])


@SETTINGS
@given(st.sampled_from(GOLDENS), st.data())
def test_decode_total_on_bit_flips(golden: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(golden) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(golden)
    flipped[index] ^= 1 << bit
    decodes_or_rejects(bytes(flipped))
