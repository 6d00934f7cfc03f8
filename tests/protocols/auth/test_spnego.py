"""SPNEGO codec and its DER layer: Samba/smbclient captures, impacket oracle, bad input."""

from __future__ import annotations

import pytest
from impacket import spnego as impacket_spnego

from protocols._wire import Reader
from protocols.auth import _der, spnego
from protocols.auth.spnego import (
    OID_KRB5,
    OID_MS_KRB5,
    OID_NTLMSSP,
    OID_SPNEGO,
    NegState,
    NegTokenInit,
    NegTokenResp,
)
from protocols.errors import MalformedMessage, TrailingBytes, Truncated, Unsupported
from tests.helpers import golden

IMPACKET_NTLMSSP = impacket_spnego.TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]


def rejected(blob: bytes) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as info:
        spnego.decode_client_token(blob)
    return info.value


# -- goldens captured from smbclient against smbd -----------------------------------


def test_encode_neg_token_init2_matches_samba() -> None:
    assert spnego.encode_neg_token_init2() == golden("spnego_samba_neg_token_init2")


def test_decode_samba_neg_token_init2() -> None:
    token = spnego.decode_client_token(golden("spnego_samba_neg_token_init2"))
    assert token == NegTokenInit(mech_types=(OID_NTLMSSP,), mech_token=None)


def test_decode_smbclient_init_with_ntlm_negotiate() -> None:
    token = spnego.decode_client_token(golden("spnego_smbclient_init_negotiate"))
    assert token == NegTokenInit(
        mech_types=(OID_NTLMSSP,), mech_token=golden("ntlm_smbclient_negotiate")
    )


def test_decode_samba_challenge_response() -> None:
    token = spnego.decode_client_token(golden("spnego_samba_resp_challenge"))
    assert token == NegTokenResp(
        neg_state=NegState.ACCEPT_INCOMPLETE,
        supported_mech=OID_NTLMSSP,
        response_token=golden("ntlm_samba_challenge"),
        mech_list_mic=None,
    )


def test_encode_challenge_response_matches_samba() -> None:
    blob = spnego.encode_neg_token_resp(
        NegState.ACCEPT_INCOMPLETE,
        supported_mech=OID_NTLMSSP,
        response_token=golden("ntlm_samba_challenge"),
    )
    assert blob == golden("spnego_samba_resp_challenge")


def test_encode_accept_completed_matches_samba() -> None:
    blob = spnego.encode_neg_token_resp(NegState.ACCEPT_COMPLETED)
    assert blob == golden("spnego_samba_resp_completed")


def test_decode_smbclient_authenticate_with_mech_list_mic() -> None:
    token = spnego.decode_client_token(golden("spnego_smbclient_resp_authenticate_user"))
    assert isinstance(token, NegTokenResp)
    assert token.neg_state is None
    assert token.response_token == golden("ntlm_smbclient_authenticate_user")
    assert token.mech_list_mic is not None
    assert token.mech_list_mic[:4] == b"\x01\x00\x00\x00"  # NTLMSSP_MESSAGE_SIGNATURE


def test_raw_ntlmssp_passes_through() -> None:
    raw = golden("ntlm_smbclient_negotiate")
    assert spnego.decode_client_token(raw) is raw


def test_ntlm_mech_token_when_ntlmssp_is_first_choice() -> None:
    token = spnego.decode_client_token(golden("spnego_smbclient_init_negotiate"))
    assert isinstance(token, NegTokenInit)
    assert spnego.ntlm_mech_token(token) == golden("ntlm_smbclient_negotiate")


def test_no_ntlm_mech_token_when_kerberos_is_first_choice() -> None:
    init = NegTokenInit((OID_MS_KRB5, OID_NTLMSSP), b"\x60\x00kerberos")
    assert spnego.ntlm_mech_token(init) is None


def test_no_ntlm_mech_token_without_token() -> None:
    assert spnego.ntlm_mech_token(NegTokenInit((OID_NTLMSSP,), None)) is None
    assert spnego.ntlm_mech_token(NegTokenInit((), None)) is None


# -- impacket as an independent implementation ----------------------------------------


def test_decode_impacket_neg_token_init() -> None:
    init = impacket_spnego.SPNEGO_NegTokenInit()
    init["MechTypes"] = [IMPACKET_NTLMSSP]
    init["MechToken"] = golden("ntlm_smbclient_negotiate")
    token = spnego.decode_client_token(init.getData())
    assert token == NegTokenInit((OID_NTLMSSP,), golden("ntlm_smbclient_negotiate"))


def test_decode_impacket_neg_token_resp() -> None:
    resp = impacket_spnego.SPNEGO_NegTokenResp()
    resp["ResponseToken"] = golden("ntlm_smbclient_authenticate_user")
    token = spnego.decode_client_token(resp.getData())
    assert token == NegTokenResp(None, None, golden("ntlm_smbclient_authenticate_user"), None)


def test_impacket_parses_our_neg_token_resp() -> None:
    blob = spnego.encode_neg_token_resp(
        NegState.ACCEPT_INCOMPLETE, supported_mech=OID_NTLMSSP, response_token=b"NTLMSSP\0x"
    )
    parsed = impacket_spnego.SPNEGO_NegTokenResp(blob)
    assert parsed["NegState"] == b"\x01"
    assert parsed["SupportedMech"] == IMPACKET_NTLMSSP
    assert parsed["ResponseToken"] == b"NTLMSSP\0x"


def test_impacket_parses_our_neg_token_init2() -> None:
    mechs = (OID_MS_KRB5, OID_KRB5, OID_NTLMSSP)
    parsed = impacket_spnego.SPNEGO_NegTokenInit(spnego.encode_neg_token_init2(mechs))
    assert parsed["MechTypes"][-1] == IMPACKET_NTLMSSP
    assert len(parsed["MechTypes"]) == 3


def test_encode_neg_token_init_round_trip() -> None:
    blob = spnego.encode_neg_token_init((OID_KRB5, OID_NTLMSSP), b"token")
    assert spnego.decode_client_token(blob) == NegTokenInit((OID_KRB5, OID_NTLMSSP), b"token")


# -- OBJECT IDENTIFIER --------------------------------------------------------------


@pytest.mark.parametrize(
    ("oid", "content"),
    [
        (OID_SPNEGO, "2b0601050502"),
        (OID_NTLMSSP, "2b06010401823702020a"),
        (OID_KRB5, "2a864886f712010202"),
        (OID_MS_KRB5, "2a864882f712010202"),
        ("2.999.3", "883703"),
        ("0.0", "00"),
    ],
)
def test_oid_known_encodings(oid: str, content: str) -> None:
    assert _der.encode_oid(oid).hex() == content
    assert _der.decode_oid(bytes.fromhex(content)) == oid


@pytest.mark.parametrize("oid", ["", "1", "1.x", "3.1", "1.40", "1..2", "-1.2", "1.٣"])
def test_encode_oid_rejects_bad_strings(oid: str) -> None:
    with pytest.raises(ValueError, match="OID"):
        _der.encode_oid(oid)


def test_reject_empty_oid() -> None:
    with pytest.raises(MalformedMessage) as info:
        _der.decode_oid(b"")
    assert type(info.value) is MalformedMessage


def test_reject_oid_non_minimal_arc() -> None:
    with pytest.raises(MalformedMessage) as info:
        _der.decode_oid(bytes.fromhex("2b80"))
    assert type(info.value) is MalformedMessage


def test_reject_oid_cut_inside_arc() -> None:
    with pytest.raises(Truncated):
        _der.decode_oid(bytes.fromhex("2b8282"))


def test_reject_oid_arc_too_large() -> None:
    with pytest.raises(Unsupported):
        _der.decode_oid(bytes.fromhex("2b" + "ff" * 9 + "7f"))


# -- DER framing ------------------------------------------------------------------


def test_der_long_form_lengths() -> None:
    for size in (0, 127, 128, 255, 256, 70_000):
        element = _der.tlv(0x04, bytes(size))
        tag, content = _der.DerReader.over(element, "der").read_tlv()
        assert (tag, content.remaining) == (0x04, size)


def test_reject_der_length_beyond_data() -> None:
    assert isinstance(rejected(bytes.fromhex("a1053003a0010a")), Truncated)


def test_reject_der_long_length_beyond_data() -> None:
    assert isinstance(rejected(bytes.fromhex("a18400ffffff3000")), Truncated)


def test_reject_der_indefinite_length() -> None:
    error = rejected(bytes.fromhex("a18030000000"))
    assert type(error) is MalformedMessage
    assert "indefinite" in error.reason


def test_reject_der_five_length_octets() -> None:
    error = rejected(bytes.fromhex("a1850000000002" + "3000"))
    assert type(error) is MalformedMessage


def test_reject_der_high_tag_number() -> None:
    reader = _der.DerReader.over(bytes.fromhex("1f810100"), "der")
    with pytest.raises(Unsupported):
        reader.read_tlv()


def test_reject_der_nesting_too_deep() -> None:
    nested = b""
    for _ in range(_der.MAX_DEPTH + 1):
        nested = _der.tlv(0x30, nested)
    reader = _der.DerReader.over(nested, "der")
    with pytest.raises(MalformedMessage) as info:
        for _ in range(_der.MAX_DEPTH + 1):
            reader = reader.enter(0x30)
    assert type(info.value) is MalformedMessage
    assert "too deep" in info.value.reason


def test_reject_der_nesting_too_deep_via_read_constructed() -> None:
    reader = _der.DerReader(Reader(b"\x30\x00", "der"), _der.MAX_DEPTH)
    with pytest.raises(MalformedMessage, match="too deep"):
        reader.read_constructed()


# -- malformed SPNEGO ------------------------------------------------------------


def test_reject_empty_blob() -> None:
    assert isinstance(rejected(b""), Truncated)


def test_reject_unknown_first_byte() -> None:
    assert type(rejected(b"\x30\x00")) is MalformedMessage


def test_reject_bytes_after_token() -> None:
    assert isinstance(rejected(golden("spnego_samba_resp_completed") + b"\x00"), TrailingBytes)


def test_reject_bytes_after_wrapped_init() -> None:
    assert isinstance(rejected(golden("spnego_smbclient_init_negotiate") + b"\x00"), TrailingBytes)


def test_reject_kerberos_wrapper() -> None:
    body = _der.tlv(0x06, _der.encode_oid(OID_KRB5)) + b"\x01\x00"
    assert isinstance(rejected(_der.tlv(0x60, body)), Unsupported)


def test_reject_neg_token_resp_inside_wrapper() -> None:
    resp = golden("spnego_samba_resp_completed")
    body = _der.tlv(0x06, _der.encode_oid(OID_SPNEGO)) + resp
    assert type(rejected(_der.tlv(0x60, body))) is MalformedMessage


def test_reject_init_without_mech_types() -> None:
    token = _der.tlv(0xA2, _der.tlv(0x04, b"x"))
    init = _der.tlv(0xA0, _der.tlv(0x30, token))
    blob = _der.tlv(0x60, _der.tlv(0x06, _der.encode_oid(OID_SPNEGO)) + init)
    assert "mechTypes" in rejected(blob).reason


def test_reject_fields_out_of_order() -> None:
    state = _der.tlv(0xA0, bytes.fromhex("0a0101"))
    token = _der.tlv(0xA2, _der.tlv(0x04, b"x"))
    blob = _der.tlv(0xA1, _der.tlv(0x30, token + state))
    assert type(rejected(blob)) is MalformedMessage


def test_reject_duplicate_field() -> None:
    state = _der.tlv(0xA0, bytes.fromhex("0a0101"))
    blob = _der.tlv(0xA1, _der.tlv(0x30, state + state))
    assert type(rejected(blob)) is MalformedMessage


def test_reject_primitive_field() -> None:
    blob = _der.tlv(0xA1, _der.tlv(0x30, bytes.fromhex("800101")))
    assert "not constructed" in rejected(blob).reason


def test_reject_neg_state_out_of_range() -> None:
    blob = _der.tlv(0xA1, _der.tlv(0x30, _der.tlv(0xA0, bytes.fromhex("0a0104"))))
    assert "negState" in rejected(blob).reason


def test_reject_neg_state_two_octets() -> None:
    blob = _der.tlv(0xA1, _der.tlv(0x30, _der.tlv(0xA0, bytes.fromhex("0a020001"))))
    assert "negState" in rejected(blob).reason


def test_reject_wrong_type_in_field() -> None:
    blob = _der.tlv(0xA1, _der.tlv(0x30, _der.tlv(0xA2, _der.tlv(0x0C, b"x"))))
    assert "expected tag 0x04" in rejected(blob).reason


def test_reject_bytes_after_field_value() -> None:
    field = _der.tlv(0xA2, _der.tlv(0x04, b"x") + b"\x05\x00")
    blob = _der.tlv(0xA1, _der.tlv(0x30, field))
    assert isinstance(rejected(blob), TrailingBytes)


def test_reject_bad_supported_mech() -> None:
    blob = _der.tlv(0xA1, _der.tlv(0x30, _der.tlv(0xA1, _der.tlv(0x06, b""))))
    assert "empty OID" in rejected(blob).reason


def test_reject_neg_token_resp_without_sequence() -> None:
    blob = _der.tlv(0xA1, _der.tlv(0x31, b""))
    assert "expected tag 0x30" in rejected(blob).reason
