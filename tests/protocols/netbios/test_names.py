"""First-level NetBIOS name encoding (RFC 1001 §14.1)."""

from __future__ import annotations

import pytest
from impacket import nmb

from protocols.errors import MalformedMessage, PointerLoop, Truncated
from protocols.netbios.names import (
    NetbiosName,
    decode_first_level,
    decode_netbios_name,
    encode_first_level,
    encode_netbios_name,
)

# "SQL01-CZ1<00>" as nmblookup sends it (captured).
SQL01_CZ1 = b" FDFBEMDADBCNEDFKDBCACACACACACAAA\x00"
WILDCARD = b" CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00"


def test_encode_known_name() -> None:
    assert encode_netbios_name(NetbiosName("SQL01-CZ1", 0x00)) == SQL01_CZ1


def test_encode_wildcard_pads_with_nuls() -> None:
    assert encode_netbios_name(NetbiosName("*")) == WILDCARD


def test_decode_wildcard() -> None:
    assert decode_netbios_name(WILDCARD) == (NetbiosName("*", 0, ""), len(WILDCARD))


def test_decode_known_name_returns_end_offset() -> None:
    data = b"xx" + SQL01_CZ1 + b"\x00\x20"
    assert decode_netbios_name(data, 2) == (NetbiosName("SQL01-CZ1"), 2 + len(SQL01_CZ1))


def test_make_upper_cases_ascii_only() -> None:
    assert NetbiosName.make("sql01-cz1", 0x20) == NetbiosName("SQL01-CZ1", 0x20)
    assert NetbiosName.make("caf\u00e9").name == "CAF\u00e9"


def test_key_is_case_insensitive() -> None:
    assert NetbiosName("sql01", 0, "Corp").key() == NetbiosName("SQL01", 0, "corp").key()
    assert NetbiosName("SQL01", 0).key() != NetbiosName("SQL01", 0x20).key()


@pytest.mark.parametrize(
    ("name", "suffix", "scope"),
    [("SQL01-CZ1", 0x20, ""), ("CORP", 0x1E, "corp.example"), ("WS", 0x00, "")],
)
def test_encoding_matches_impacket(name: str, suffix: int, scope: str) -> None:
    ours = encode_netbios_name(NetbiosName(name, suffix, scope))
    assert ours == nmb.encode_name(name, suffix, scope or None)


def test_scoped_name_round_trip() -> None:
    name = NetbiosName("SQL01-CZ3", 0x00, "CORP.EXAMPLE")
    wire = encode_netbios_name(name)
    assert wire.endswith(b"\x04CORP\x07EXAMPLE\x00")
    assert decode_netbios_name(wire) == (name, len(wire))


def test_pointer_followed_when_allowed() -> None:
    data = SQL01_CZ1 + b"\xc0\x00"
    name, end = decode_netbios_name(data, len(SQL01_CZ1), compression=True)
    assert name == NetbiosName("SQL01-CZ1")
    assert end == len(data)


def test_pointer_into_scope_labels() -> None:
    first = encode_netbios_name(NetbiosName("A", 0, "corp.example"))
    second = b"\x20" + encode_first_level(NetbiosName("B")) + b"\xc0\x21"
    name, end = decode_netbios_name(first + second, len(first), compression=True)
    assert name == NetbiosName("B", 0, "corp.example")
    assert end == len(first) + len(second)


def test_first_level_round_trip_all_bytes() -> None:
    for value in range(256):
        raw = bytes([value]) * 16
        encoded = b"".join(bytes((65 + (b >> 4), 65 + (b & 15))) for b in raw)
        assert decode_first_level(encoded) == raw


def test_constructor_rejects_long_name() -> None:
    with pytest.raises(ValueError, match="characters"):
        NetbiosName("A" * 16)


def test_constructor_rejects_bad_suffix() -> None:
    with pytest.raises(ValueError, match="suffix"):
        NetbiosName("A", 256)


def test_encoder_rejects_overlong_scope() -> None:
    with pytest.raises(ValueError, match="too long"):
        encode_netbios_name(NetbiosName("A", 0, ".".join(["x" * 60] * 4)))


# ------------------------------------------------------------------ rejections


def test_reject_pointer_without_compression() -> None:
    with pytest.raises(MalformedMessage, match="pointer where none"):
        decode_netbios_name(SQL01_CZ1 + b"\xc0\x00", len(SQL01_CZ1))


def test_reject_forward_pointer() -> None:
    with pytest.raises(PointerLoop):
        decode_netbios_name(b"\xc0\x02" + SQL01_CZ1, compression=True)


def test_reject_self_pointer() -> None:
    with pytest.raises(PointerLoop):
        decode_netbios_name(b"\xc0\x00", compression=True)


def test_reject_truncated_pointer() -> None:
    with pytest.raises(Truncated):
        decode_netbios_name(b"\xc0", compression=True)


def test_reject_truncated_label() -> None:
    with pytest.raises(Truncated):
        decode_netbios_name(SQL01_CZ1[:20])


def test_reject_missing_terminator() -> None:
    with pytest.raises(Truncated):
        decode_netbios_name(SQL01_CZ1[:-1])


def test_reject_empty_input() -> None:
    with pytest.raises(Truncated):
        decode_netbios_name(b"")


def test_reject_short_first_label() -> None:
    with pytest.raises(MalformedMessage, match="must be 32"):
        decode_netbios_name(b"\x10" + b"A" * 16 + b"\x00")


def test_reject_empty_name() -> None:
    with pytest.raises(MalformedMessage, match="must be 32"):
        decode_netbios_name(b"\x00")


def test_reject_letter_outside_a_to_p() -> None:
    with pytest.raises(MalformedMessage, match="outside 'A'"):
        decode_netbios_name(b"\x20" + b"Q" * 32 + b"\x00")


def test_reject_lower_case_letters() -> None:
    with pytest.raises(MalformedMessage, match="outside 'A'"):
        decode_netbios_name(SQL01_CZ1.lower())


def test_reject_wrong_length_first_level() -> None:
    with pytest.raises(MalformedMessage, match="not 32"):
        decode_first_level(b"AAAA")


def test_reject_reserved_label_type() -> None:
    with pytest.raises(MalformedMessage, match="reserved label type"):
        decode_netbios_name(SQL01_CZ1[:-1] + b"\x40\x00")


def test_reject_dot_inside_scope_label() -> None:
    with pytest.raises(MalformedMessage, match="dot inside"):
        decode_netbios_name(SQL01_CZ1[:-1] + b"\x03a.b\x00")


def test_reject_name_over_255_bytes() -> None:
    data = SQL01_CZ1[:-1] + (b"\x3f" + b"x" * 63) * 4 + b"\x00"
    with pytest.raises(MalformedMessage, match="longer than 255"):
        decode_netbios_name(data)


def test_reject_pointer_chain_too_long() -> None:
    # 17 pointers, each to the previous one: loop-free but past the hop limit.
    data = (
        SQL01_CZ1 + b"\xc0\x00" + b"".join(bytes((0xC0, len(SQL01_CZ1) + 2 * i)) for i in range(17))
    )
    with pytest.raises(PointerLoop):
        decode_netbios_name(data, len(data) - 2, compression=True)


def test_all_space_name_decodes_as_one_space() -> None:
    wire = encode_netbios_name(NetbiosName(" ", 0x20))
    assert wire == b" CACACACACACACACACACACACACACACACA\x00"
    assert decode_netbios_name(wire)[0] == NetbiosName(" ", 0x20)


def test_wildcard_padded_with_spaces_decodes_as_wildcard() -> None:
    wire = b" CK" + b"CA" * 14 + b"AA\x00"
    assert decode_netbios_name(wire)[0] == NetbiosName("*")
