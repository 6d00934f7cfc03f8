"""NTLMSSP codec: Samba/smbclient captures, impacket as an oracle, malformed input."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from impacket import ntlm

from protocols.auth import ntlmssp
from protocols.auth.ntlmssp import AvId, MessageType, NegotiateFlags, NtlmIdentity
from protocols.errors import MalformedMessage, TrailingBytes, Truncated
from tests.helpers import golden

F = NegotiateFlags

IDENTITY = NtlmIdentity(
    nb_computer_name="SQL01-CZ1",
    nb_domain_name="CORP",
    dns_computer_name="sql01-cz1.corp.example",
    dns_domain_name="corp.example",
    dns_tree_name="corp.example",
)
CHALLENGE = bytes.fromhex("0123456789abcdef")
TIMESTAMP = 133_444_736_000_000_000  # 2023-11-14T22:13:20Z as a FILETIME


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def names(message: ntlmssp.ChallengeMessage) -> dict[int, bytes]:
    return dict(message.target_info)


def our_challenge(client_flags: NegotiateFlags, identity: NtlmIdentity = IDENTITY) -> bytes:
    return ntlmssp.encode_challenge(
        identity, client_flags, server_challenge=CHALLENGE, timestamp=TIMESTAMP
    )


# -- goldens captured from smbclient against smbd -----------------------------


def test_decode_smbclient_negotiate() -> None:
    message = ntlmssp.decode_negotiate(golden("ntlm_smbclient_negotiate"))
    assert message.flags == 0x62088215
    assert message.flags & F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    assert (message.domain, message.workstation) == ("", "")
    assert message.version == bytes.fromhex("060100000000000f")


def test_decode_samba_challenge() -> None:
    message = ntlmssp.decode_challenge(golden("ntlm_samba_challenge"))
    assert message.target_name == "SAMBACAP"
    assert message.flags & F.NTLMSSP_TARGET_TYPE_SERVER
    assert message.server_challenge == bytes.fromhex("a3a36813f960d088")
    assert [av_id for av_id, _ in message.target_info] == [2, 1, 4, 3, 7]
    assert names(message)[AvId.NB_COMPUTER_NAME] == utf16("SAMBACAP")
    assert names(message)[AvId.DNS_COMPUTER_NAME] == utf16("vm")
    assert message.version == bytes.fromhex("060100000000000f")


def test_decode_smbclient_authenticate_user() -> None:
    message = ntlmssp.decode_authenticate(golden("ntlm_smbclient_authenticate_user"))
    assert (message.domain, message.user, message.workstation) == ("CAPTURE", "foo", "SAMBACAP")
    assert message.lm_response == bytes(24)
    assert len(message.nt_response) == 224
    assert not message.is_anonymous


def test_decode_smbclient_authenticate_named_user_without_proof() -> None:
    # smbclient -N first tries its Unix user with no password; only the retry
    # with an empty user name is anonymous (MS-NLMP §3.2.5.1.2).
    message = ntlmssp.decode_authenticate(golden("ntlm_smbclient_authenticate_anon"))
    assert message.user == "root"
    assert (message.lm_response, message.nt_response) == (b"", b"")
    assert not message.is_anonymous


def test_smbclient_negotiate_reencodes_byte_for_byte() -> None:
    token = golden("ntlm_smbclient_negotiate")
    assert ntlmssp.encode_negotiate(ntlmssp.decode_negotiate(token)) == token


def test_message_type_of_goldens() -> None:
    assert ntlmssp.message_type(golden("ntlm_smbclient_negotiate")) is MessageType.NEGOTIATE
    assert ntlmssp.message_type(golden("ntlm_samba_challenge")) is MessageType.CHALLENGE
    assert ntlmssp.message_type(golden("ntlm_smbclient_authenticate_user")) is (
        MessageType.AUTHENTICATE
    )


def test_samba_challenge_reencodes_byte_for_byte() -> None:
    token = golden("ntlm_samba_challenge")
    assert ntlmssp.encode_challenge_message(ntlmssp.decode_challenge(token)) == token


# -- our CHALLENGE --------------------------------------------------------------

GOLDEN_CHALLENGE = bytes.fromhex(
    "4e544c4d53535000"  # signature
    "02000000"  # CHALLENGE
    "0800080038000000"  # TargetNameFields: 8 bytes at 56
    "15828962"  # flags: client's 0x62088215 + TARGET_INFO + TARGET_TYPE_DOMAIN
    "0123456789abcdef"  # server challenge
    "0000000000000000"  # reserved
    "9a009a0040000000"  # TargetInfoFields: 154 bytes at 64
    "0a007c4f0000000f"  # VERSION 10.0.20348, revision 15
    "43004f0052005000"  # "CORP"
    "0200080043004f0052005000"
    "01001200530051004c00300031002d0043005a003100"
    "040018006300"
    "6f00720070002e006500780061006d0070006c006500"
    "03002c00730071006c00300031002d0063007a0031002e00"
    "63006f00720070002e006500780061006d0070006c006500"
    "050018006300"
    "6f00720070002e006500780061006d0070006c006500"
    "0700080000006dc64717da01"
    "00000000"  # MsvAvEOL
)


def test_encode_challenge_golden() -> None:
    client = ntlmssp.decode_negotiate(golden("ntlm_smbclient_negotiate"))
    assert our_challenge(client.flags) == GOLDEN_CHALLENGE


def test_challenge_layout_matches_samba() -> None:
    ours = ntlmssp.decode_challenge(GOLDEN_CHALLENGE)
    samba = golden("ntlm_samba_challenge")
    assert GOLDEN_CHALLENGE[16:20] == samba[16:20] == struct.pack("<I", 56)
    samba_flags = ntlmssp.decode_challenge(samba).flags
    assert ours.flags & ~F.NTLMSSP_TARGET_TYPE_DOMAIN == samba_flags & ~F.NTLMSSP_TARGET_TYPE_SERVER


def test_filetime() -> None:
    assert ntlmssp.filetime(0) == 116_444_736_000_000_000
    assert ntlmssp.filetime(1_700_000_000) == TIMESTAMP
    assert ntlmssp.filetime(0.5) == 116_444_736_005_000_000


def test_filetime_rejects_before_1601() -> None:
    with pytest.raises(ValueError, match="1601"):
        ntlmssp.filetime(-12_000_000_000)


def test_challenge_flags_oem_without_unicode() -> None:
    flags = ntlmssp.challenge_flags(F.NTLMSSP_NEGOTIATE_NTLM | F.NTLM_NEGOTIATE_OEM, IDENTITY)
    assert flags & F.NTLM_NEGOTIATE_OEM
    assert not flags & F.NTLMSSP_NEGOTIATE_UNICODE


def test_challenge_flags_unicode_wins_over_oem() -> None:
    asked = F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLM_NEGOTIATE_OEM
    flags = ntlmssp.challenge_flags(asked, IDENTITY)
    assert flags & F.NTLMSSP_NEGOTIATE_UNICODE
    assert not flags & F.NTLM_NEGOTIATE_OEM


def test_challenge_flags_prefer_extended_session_security_over_lm_key() -> None:
    asked = F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY | F.NTLMSSP_NEGOTIATE_LM_KEY
    flags = ntlmssp.challenge_flags(asked, IDENTITY)
    assert flags & F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    assert not flags & F.NTLMSSP_NEGOTIATE_LM_KEY


def test_challenge_flags_lm_key_without_extended_session_security() -> None:
    flags = ntlmssp.challenge_flags(F.NTLMSSP_NEGOTIATE_LM_KEY, IDENTITY)
    assert flags & F.NTLMSSP_NEGOTIATE_LM_KEY


def test_challenge_flags_always_set_target_bits() -> None:
    flags = ntlmssp.challenge_flags(F(0), IDENTITY)
    assert flags == (
        F.NTLMSSP_REQUEST_TARGET
        | F.NTLMSSP_NEGOTIATE_TARGET_INFO
        | F.NTLMSSP_NEGOTIATE_VERSION
        | F.NTLMSSP_TARGET_TYPE_DOMAIN
        | F.NTLM_NEGOTIATE_OEM
    )


def test_challenge_flags_server_target_type() -> None:
    server = NtlmIdentity("A", "B", "a.b", "b", "b", target_type_domain=False)
    flags = ntlmssp.challenge_flags(F(0), server)
    assert flags & F.NTLMSSP_TARGET_TYPE_SERVER
    assert not flags & F.NTLMSSP_TARGET_TYPE_DOMAIN


def test_challenge_flags_do_not_grant_unlisted_options() -> None:
    asked = F.NTLMSSP_NEGOTIATE_DATAGRAM | F.NTLMSSP_NEGOTIATE_IDENTIFY | F.NTLMSSP_ANONYMOUS
    flags = ntlmssp.challenge_flags(asked, IDENTITY)
    assert not flags & asked


def test_challenge_carries_version_even_when_not_asked() -> None:
    token = our_challenge(F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_NEGOTIATE_NTLM)
    assert token[48:56] == bytes.fromhex("0a007c4f0000000f")
    assert struct.unpack_from("<I", token, 16)[0] == 56
    message = ntlmssp.decode_challenge(token)
    assert message.flags & F.NTLMSSP_NEGOTIATE_VERSION
    assert message.version == bytes.fromhex("0a007c4f0000000f")


def test_challenge_version_comes_from_identity() -> None:
    token = our_challenge(F(0), replace(IDENTITY, version=(6, 3, 9600)))
    assert ntlmssp.decode_challenge(token).version == ntlmssp.encode_version(6, 3, 9600)


def test_message_without_version_keeps_a_zero_version_slot() -> None:
    token = ntlmssp.encode_challenge_message(
        replace(ntlmssp.decode_challenge(our_challenge(F(0))), flags=F(0), version=None)
    )
    assert token[48:56] == bytes(8)
    assert ntlmssp.decode_challenge(token).version is None


def test_challenge_oem_target_name() -> None:
    token = our_challenge(F.NTLMSSP_NEGOTIATE_NTLM)
    assert token[56:60] == b"CORP"
    message = ntlmssp.decode_challenge(token)
    assert message.target_name == "CORP"
    assert names(message)[AvId.NB_DOMAIN_NAME] == utf16("CORP")


def test_challenge_rejects_short_server_challenge() -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        ntlmssp.encode_challenge(IDENTITY, F(0), server_challenge=b"short", timestamp=0)


def test_challenge_rejects_oversized_target_info() -> None:
    long_name = NtlmIdentity("A", "B", "x" * 20_000, "y" * 20_000, "b")
    with pytest.raises(ValueError, match=r"field of \d+ bytes exceeds 65535"):
        our_challenge(F.NTLMSSP_NEGOTIATE_UNICODE, long_name)
    huge_name = NtlmIdentity("A", "B", "x" * 40_000, "b", "b")
    with pytest.raises(ValueError, match=r"AV_PAIR value of \d+ bytes exceeds 65535"):
        our_challenge(F.NTLMSSP_NEGOTIATE_UNICODE, huge_name)


# -- impacket as an independent client --------------------------------------------


def impacket_negotiate() -> ntlm.NTLMAuthNegotiate:
    return ntlm.getNTLMSSPType1("WKS7", "CORP", signingRequired=True)


def test_decode_impacket_negotiate() -> None:
    message = ntlmssp.decode_negotiate(impacket_negotiate().getData())
    assert message.flags & F.NTLMSSP_NEGOTIATE_UNICODE
    assert message.flags & F.NTLMSSP_NEGOTIATE_SIGN
    assert message.version is None


def test_decode_impacket_negotiate_with_oem_names() -> None:
    negotiate = ntlm.NTLMAuthNegotiate()
    negotiate["flags"] |= (
        ntlm.NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED | ntlm.NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED
    )
    negotiate["domain_name"] = b"CORP"
    negotiate["host_name"] = b"WKS7"
    message = ntlmssp.decode_negotiate(negotiate.getData())
    assert (message.domain, message.workstation) == ("CORP", "WKS7")


def test_impacket_parses_our_challenge() -> None:
    token = our_challenge(F(impacket_negotiate()["flags"]))
    parsed = ntlm.NTLMAuthChallenge()
    parsed.fromString(token)
    assert parsed["challenge"] == CHALLENGE
    assert parsed["domain_name"] == utf16("CORP")
    pairs = ntlm.AV_PAIRS(parsed["TargetInfoFields"])
    assert pairs[ntlm.NTLMSSP_AV_HOSTNAME][1] == utf16("SQL01-CZ1")
    assert pairs[ntlm.NTLMSSP_AV_DOMAINNAME][1] == utf16("CORP")
    assert pairs[ntlm.NTLMSSP_AV_DNS_HOSTNAME][1] == utf16("sql01-cz1.corp.example")
    assert pairs[ntlm.NTLMSSP_AV_DNS_DOMAINNAME][1] == utf16("corp.example")
    assert pairs[ntlm.NTLMSSP_AV_DNS_TREENAME][1] == utf16("corp.example")
    assert pairs[ntlm.NTLMSSP_AV_TIME][1] == TIMESTAMP.to_bytes(8, "little")


# impacket compares its NTLMv2 LM response (bytes) with "" internally.
@pytest.mark.filterwarnings("ignore:Comparison between bytes and string:BytesWarning")
def test_decode_impacket_authenticate_against_our_challenge() -> None:
    negotiate = impacket_negotiate()
    token = our_challenge(F(negotiate["flags"]))
    authenticate, _ = ntlm.getNTLMSSPType3(negotiate, token, "alice", "Secret1", "CORP")
    message = ntlmssp.decode_authenticate(authenticate.getData())
    assert (message.domain, message.user) == ("CORP", "alice")
    assert TIMESTAMP.to_bytes(8, "little") in message.nt_response
    assert utf16("sql01-cz1.corp.example") in message.nt_response
    assert not message.is_anonymous


def test_decode_impacket_anonymous_authenticate() -> None:
    negotiate = impacket_negotiate()
    token = our_challenge(F(negotiate["flags"]))
    authenticate, _ = ntlm.getNTLMSSPType3(negotiate, token, "", "", "")
    message = ntlmssp.decode_authenticate(authenticate.getData())
    assert message.user == ""
    assert message.lm_response == b"\0"
    assert message.is_anonymous


def test_authenticate_round_trip_oem() -> None:
    message = ntlmssp.AuthenticateMessage(
        flags=F.NTLMSSP_NEGOTIATE_NTLM,
        domain="CORP",
        user="bob",
        workstation="WKS",
        lm_response=bytes(24),
        nt_response=bytes(range(24)),
        is_anonymous=False,
    )
    token = ntlmssp.encode_authenticate(message)
    assert b"bob" in token
    assert ntlmssp.decode_authenticate(token) == message


def test_empty_field_ignores_its_offset() -> None:
    token = bytearray(golden("ntlm_smbclient_negotiate"))
    struct.pack_into("<I", token, 20, 0xFFFF_FFF0)  # DomainNameFields.BufferOffset
    assert ntlmssp.decode_negotiate(bytes(token)).domain == ""


# -- malformed input ------------------------------------------------------------------


def patched(token: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(token)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def test_reject_bad_signature() -> None:
    token = b"NTLMSSX\0" + golden("ntlm_smbclient_negotiate")[8:]
    with pytest.raises(MalformedMessage) as info:
        ntlmssp.message_type(token)
    assert type(info.value) is MalformedMessage


def test_reject_short_signature() -> None:
    with pytest.raises(Truncated):
        ntlmssp.message_type(b"NTLMSSP\0\x01")


def test_reject_unknown_message_type() -> None:
    token = patched(golden("ntlm_smbclient_negotiate"), 8, "<I", 4)
    with pytest.raises(MalformedMessage) as info:
        ntlmssp.decode_negotiate(token)
    assert type(info.value) is MalformedMessage


def test_reject_wrong_message_type() -> None:
    with pytest.raises(MalformedMessage) as info:
        ntlmssp.decode_negotiate(golden("ntlm_samba_challenge"))
    assert type(info.value) is MalformedMessage
    assert "expected NEGOTIATE" in info.value.reason


def test_reject_truncated_negotiate_header() -> None:
    with pytest.raises(Truncated):
        ntlmssp.decode_negotiate(golden("ntlm_smbclient_negotiate")[:31])


def test_reject_truncated_challenge_header() -> None:
    with pytest.raises(Truncated):
        ntlmssp.decode_challenge(golden("ntlm_samba_challenge")[:47])


def test_reject_truncated_authenticate_header() -> None:
    with pytest.raises(Truncated):
        ntlmssp.decode_authenticate(golden("ntlm_smbclient_authenticate_user")[:63])


def test_reject_version_flag_without_version() -> None:
    with pytest.raises(Truncated):
        ntlmssp.decode_negotiate(golden("ntlm_smbclient_negotiate")[:36])


def test_reject_offset_beyond_buffer() -> None:
    token = patched(golden("ntlm_samba_challenge"), 16, "<I", 0x1000)  # TargetNameFields offset
    with pytest.raises(Truncated):
        ntlmssp.decode_challenge(token)


def test_reject_length_beyond_buffer() -> None:
    token = patched(golden("ntlm_smbclient_authenticate_user"), 28, "<H", 0xFFFF)  # Domain len
    with pytest.raises(Truncated):
        ntlmssp.decode_authenticate(token)


def test_reject_huge_offset_without_overflow() -> None:
    token = patched(golden("ntlm_smbclient_authenticate_user"), 32, "<I", 0xFFFF_FFFF)  # Domain
    with pytest.raises(Truncated):
        ntlmssp.decode_authenticate(token)


def test_reject_odd_utf16_length() -> None:
    token = patched(golden("ntlm_smbclient_authenticate_user"), 36, "<H", 5)  # User len 6 -> 5
    with pytest.raises(MalformedMessage) as info:
        ntlmssp.decode_authenticate(token)
    assert type(info.value) is MalformedMessage
    assert "odd UTF-16" in info.value.reason


def test_reject_invalid_utf16() -> None:
    token = bytearray(golden("ntlm_samba_challenge"))
    token[56:58] = b"\x00\xd8"  # a lone high surrogate in TargetName
    with pytest.raises(MalformedMessage) as info:
        ntlmssp.decode_challenge(bytes(token))
    assert type(info.value) is MalformedMessage


def test_reject_av_pair_past_target_info() -> None:
    token = bytearray(GOLDEN_CHALLENGE)
    struct.pack_into("<H", token, 64 + 2, 200)  # first AvLen beyond TargetInfo
    with pytest.raises(Truncated):
        ntlmssp.decode_challenge(bytes(token))


def test_reject_target_info_without_eol() -> None:
    token = patched(GOLDEN_CHALLENGE, 40, "<H", 154 - 4)  # TargetInfo Len stops before EOL
    with pytest.raises(Truncated):
        ntlmssp.decode_challenge(token)


def test_reject_eol_with_value() -> None:
    with pytest.raises(MalformedMessage) as info:
        ntlmssp.decode_av_pairs(b"\x00\x00\x02\x00ab")
    assert type(info.value) is MalformedMessage


def test_reject_bytes_after_eol() -> None:
    with pytest.raises(TrailingBytes):
        ntlmssp.decode_av_pairs(b"\x00\x00\x00\x00junk")


# -- Samba's NTLMSSP client against our CHALLENGE ----------------------------------------


def samba_python() -> str:
    """The interpreter Samba's own tools run on, which has Samba's bindings."""
    tool = shutil.which("samba-tool")
    assert tool is not None, "samba-tool (samba-common-bin) is required"
    shebang = Path(tool).read_text().splitlines()[0]
    return shebang.removeprefix("#!").strip()


def run_samba_client(tmp_path: Path, user: str, password: str) -> ntlmssp.AuthenticateMessage:
    conf = tmp_path / "smb.conf"
    conf.write_text(f"[global]\n  workgroup = CORP\n  state directory = {tmp_path}\n")
    script = Path(__file__).with_name("samba_ntlm_client.py")
    with subprocess.Popen(
        [samba_python(), str(script), str(conf), user, password],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as client:
        assert client.stdin is not None and client.stdout is not None
        negotiate = ntlmssp.decode_negotiate(bytes.fromhex(client.stdout.readline()))
        client.stdin.write(our_challenge(negotiate.flags).hex() + "\n")
        client.stdin.flush()
        authenticate = client.stdout.readline()
        assert client.wait(timeout=30) == 0
    return ntlmssp.decode_authenticate(bytes.fromhex(authenticate))


@pytest.mark.interop
def test_samba_client_accepts_our_challenge(tmp_path: Path) -> None:
    message = run_samba_client(tmp_path, "alice", "Secret1")
    assert (message.domain, message.user, message.workstation) == ("CORP", "alice", "WKS7")
    assert TIMESTAMP.to_bytes(8, "little") in message.nt_response
    assert utf16("sql01-cz1.corp.example") in message.nt_response
    assert not message.is_anonymous


@pytest.mark.interop
def test_samba_client_anonymous_against_our_challenge(tmp_path: Path) -> None:
    message = run_samba_client(tmp_path, "", "")
    assert (message.user, message.lm_response, message.nt_response) == ("", b"", b"")
    assert message.flags & F.NTLMSSP_ANONYMOUS
    assert message.is_anonymous
