"""Authenticator (one SESSION_SETUP leg per outcome) and SessionTable, without a connection."""

import pytest

from protocols.auth import ntlmssp, spnego
from protocols.auth.spnego import OID_KRB5, OID_MS_KRB5, OID_NTLMSSP, NegState, NegTokenResp
from protocols.smb._auth import (
    MAX_SESSIONS,
    Authenticator,
    AuthResult,
    SessionTable,
    TooManySessions,
)
from protocols.smb.ntstatus import NtStatus
from tests.helpers import golden
from tests.protocols.smb.smb_helpers import CLOCK, IDENTITY, CountingRandom

FLAGS = ntlmssp.NegotiateFlags
UNICODE_NEGOTIATE = ntlmssp.encode_negotiate(
    ntlmssp.NegotiateMessage(FLAGS.NTLMSSP_NEGOTIATE_UNICODE, "", "", None)
)
ANONYMOUS_AUTHENTICATE = ntlmssp.encode_authenticate(
    ntlmssp.AuthenticateMessage(
        flags=FLAGS.NTLMSSP_NEGOTIATE_UNICODE | FLAGS.NTLMSSP_ANONYMOUS,
        domain="",
        user="",
        workstation="WKS",
        lm_response=b"\0",
        nt_response=b"",
        is_anonymous=True,
    )
)


def authenticator(*, null_session=True, random_bytes=None):
    return Authenticator(
        IDENTITY.ntlm,
        null_session=null_session,
        random_bytes=random_bytes or CountingRandom(),
        clock=lambda: CLOCK,
    )


def _challenge(client_flags, server_challenge=b"\x11" * 8):
    return ntlmssp.encode_challenge(
        IDENTITY.ntlm,
        client_flags,
        server_challenge=server_challenge,
        timestamp=ntlmssp.filetime(CLOCK),
    )


def _in_progress(token):
    return AuthResult(NtStatus.MORE_PROCESSING_REQUIRED, token, False)


# -- Authenticator.step ---------------------------------------------------------------


def test_raw_negotiate_gets_raw_challenge():
    result = authenticator().step(UNICODE_NEGOTIATE)
    assert result == _in_progress(_challenge(FLAGS.NTLMSSP_NEGOTIATE_UNICODE))
    assert not result.failed


def test_spnego_init_with_ntlmssp_first_gets_wrapped_challenge():
    result = authenticator().step(golden("spnego_smbclient_init_negotiate"))
    negotiate = ntlmssp.decode_negotiate(golden("ntlm_smbclient_negotiate"))
    wrapped = spnego.encode_neg_token_resp(
        NegState.ACCEPT_INCOMPLETE,
        supported_mech=OID_NTLMSSP,
        response_token=_challenge(negotiate.flags),
    )
    assert result == _in_progress(wrapped)


def test_spnego_resp_with_negotiate_gets_wrapped_challenge():
    blob = spnego.encode_neg_token_resp(None, response_token=UNICODE_NEGOTIATE)
    token = spnego.decode_client_token(authenticator().step(blob).token)
    assert token == NegTokenResp(
        NegState.ACCEPT_INCOMPLETE,
        OID_NTLMSSP,
        _challenge(FLAGS.NTLMSSP_NEGOTIATE_UNICODE),
        None,
    )


def test_challenge_takes_injected_randomness_and_clock():
    draws = []

    def random_bytes(size):
        draws.append(size)
        return b"\x5a" * size

    result = authenticator(random_bytes=random_bytes).step(UNICODE_NEGOTIATE)
    challenge = ntlmssp.decode_challenge(result.token)
    assert draws == [8]
    assert challenge.server_challenge == b"\x5a" * 8
    timestamp = dict(challenge.target_info)[ntlmssp.AvId.TIMESTAMP]
    assert int.from_bytes(timestamp, "little") == ntlmssp.filetime(CLOCK)


def test_kerberos_only_gets_ntlmssp_offer_accept_incomplete():
    blob = spnego.encode_neg_token_init((OID_MS_KRB5, OID_KRB5), b"krb")
    offer = spnego.encode_neg_token_resp(NegState.ACCEPT_INCOMPLETE, supported_mech=OID_NTLMSSP)
    assert authenticator().step(blob) == _in_progress(offer)


def test_kerberos_first_ntlmssp_listed_gets_request_mic_offer():
    blob = spnego.encode_neg_token_init((OID_MS_KRB5, OID_NTLMSSP), b"krb")
    offer = spnego.encode_neg_token_resp(NegState.REQUEST_MIC, supported_mech=OID_NTLMSSP)
    assert authenticator().step(blob) == _in_progress(offer)


def test_ntlmssp_first_without_token_gets_request_mic_offer():
    blob = spnego.encode_neg_token_init((OID_NTLMSSP,))
    offer = spnego.encode_neg_token_resp(NegState.REQUEST_MIC, supported_mech=OID_NTLMSSP)
    assert authenticator().step(blob) == _in_progress(offer)


def test_offer_draws_no_randomness():
    random_bytes = CountingRandom()
    authenticator(random_bytes=random_bytes).step(spnego.encode_neg_token_init((OID_KRB5,)))
    assert random_bytes.calls == 0


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00junk", id="not-spnego"),
        pytest.param(spnego.encode_neg_token_resp(NegState.ACCEPT_INCOMPLETE), id="no-token"),
        pytest.param(UNICODE_NEGOTIATE[:20], id="short-ntlmssp"),
        pytest.param(golden("ntlm_samba_challenge"), id="ntlmssp-challenge-from-client"),
        pytest.param(
            spnego.encode_neg_token_resp(None, response_token=b"junk"), id="junk-in-spnego"
        ),
    ],
)
def test_undecodable_is_invalid_parameter(blob):
    result = authenticator().step(blob)
    assert result == AuthResult(NtStatus.INVALID_PARAMETER, b"", True)
    assert result.failed


def test_named_authenticate_is_logon_failure():
    result = authenticator().step(golden("spnego_smbclient_resp_authenticate_user"))
    assert result == AuthResult(NtStatus.LOGON_FAILURE, b"", True)
    assert result.failed


def test_raw_named_authenticate_is_logon_failure():
    result = authenticator().step(golden("ntlm_smbclient_authenticate_user"))
    assert result == AuthResult(NtStatus.LOGON_FAILURE, b"", True)


def test_wrapped_anonymous_authenticate_is_null_session():
    blob = spnego.encode_neg_token_resp(None, response_token=ANONYMOUS_AUTHENTICATE)
    result = authenticator().step(blob)
    completed = spnego.encode_neg_token_resp(NegState.ACCEPT_COMPLETED)
    assert result == AuthResult(NtStatus.SUCCESS, completed, True, null_session=True)
    assert not result.failed


def test_raw_anonymous_authenticate_is_null_session_without_token():
    result = authenticator().step(ANONYMOUS_AUTHENTICATE)
    assert result == AuthResult(NtStatus.SUCCESS, b"", True, null_session=True)


def test_anonymous_authenticate_denied_without_null_session():
    blob = spnego.encode_neg_token_resp(None, response_token=ANONYMOUS_AUTHENTICATE)
    result = authenticator(null_session=False).step(blob)
    assert result == AuthResult(NtStatus.ACCESS_DENIED, b"", True)
    assert result.failed


# -- Authenticator.plain (SMB1 without extended security) --------------------------------


@pytest.mark.parametrize("passwords", [b"", b"\x00"])
def test_plain_anonymous_is_null_session(passwords):
    result = authenticator().plain("", passwords)
    assert result == AuthResult(NtStatus.SUCCESS, b"", True, null_session=True)


@pytest.mark.parametrize(("account", "passwords"), [("guest", b""), ("", b"\x00\x00")])
def test_plain_named_or_with_password_is_logon_failure(account, passwords):
    assert authenticator().plain(account, passwords) == AuthResult(
        NtStatus.LOGON_FAILURE, b"", True
    )


def test_plain_anonymous_denied_without_null_session():
    result = authenticator(null_session=False).plain("", b"")
    assert result == AuthResult(NtStatus.ACCESS_DENIED, b"", True)


# -- SessionTable (SMB1 UIDs: 2 bytes, SMB2 SessionIds: 8 bytes) ---------------------------

SIZES = pytest.mark.parametrize("size", [2, 8], ids=["smb1-uid", "smb2-session-id"])
IN_PROGRESS = AuthResult(NtStatus.MORE_PROCESSING_REQUIRED, b"t", False)
NULL = AuthResult(NtStatus.SUCCESS, b"", True, null_session=True)
FAILED = AuthResult(NtStatus.LOGON_FAILURE, b"", True)


def _fixed(value):
    return lambda size: value[:size]


@SIZES
def test_new_id_is_little_endian_random(size):
    table = SessionTable(_fixed(b"\x34\x12\x00\x00\x00\x00\x00\x00"))
    assert table.new_id(size) == 0x1234


@SIZES
def test_new_id_clears_top_bit(size):
    assert SessionTable(_fixed(b"\xff" * 8)).new_id(size) == (1 << (8 * size - 1)) - 1


@SIZES
def test_new_id_is_never_zero(size):
    assert SessionTable(_fixed(bytes(8))).new_id(size) == 1
    top_bit_only = bytes(size - 1) + b"\x80"
    assert SessionTable(lambda n: top_bit_only).new_id(size) == 1


@SIZES
def test_new_id_is_not_held_until_settled(size):
    table = SessionTable(CountingRandom())
    session_id = table.new_id(size)
    assert not table.known(session_id)
    assert not table.is_null(session_id)


@SIZES
def test_settle_in_progress_remembers(size):
    table = SessionTable(CountingRandom())
    session_id = table.new_id(size)
    table.settle(session_id, IN_PROGRESS)
    assert table.known(session_id)
    assert not table.is_null(session_id)


@SIZES
def test_settle_failure_forgets(size):
    table = SessionTable(CountingRandom())
    session_id = table.new_id(size)
    table.settle(session_id, IN_PROGRESS)
    table.settle(session_id, FAILED)
    assert not table.known(session_id)


@SIZES
def test_settle_null_establishes_null_session(size):
    table = SessionTable(CountingRandom())
    session_id = table.new_id(size)
    table.settle(session_id, IN_PROGRESS)
    table.settle(session_id, NULL)
    assert table.known(session_id)
    assert table.is_null(session_id)


@SIZES
def test_failure_on_null_session_keeps_it(size):
    table = SessionTable(CountingRandom())
    session_id = table.new_id(size)
    table.settle(session_id, NULL)
    table.settle(session_id, FAILED)
    assert table.is_null(session_id)


@SIZES
def test_logoff_ends_null_session(size):
    table = SessionTable(CountingRandom())
    session_id = table.new_id(size)
    table.settle(session_id, NULL)
    table.logoff(session_id)
    assert not table.known(session_id)
    assert not table.is_null(session_id)


@SIZES
@pytest.mark.parametrize("result", [IN_PROGRESS, NULL], ids=["in-progress", "null"])
def test_max_sessions_bound(size, result):
    random_bytes = CountingRandom()
    table = SessionTable(random_bytes)
    for _ in range(MAX_SESSIONS):
        table.settle(table.new_id(size), result)
    calls = random_bytes.calls
    with pytest.raises(TooManySessions):
        table.new_id(size)
    assert random_bytes.calls == calls  # refused before drawing


@SIZES
def test_freed_slot_can_be_reused(size):
    table = SessionTable(CountingRandom())
    ids = [table.new_id(size) for _ in range(MAX_SESSIONS)]
    for session_id in ids:
        table.settle(session_id, NULL)
    table.logoff(ids[0])
    table.settle(table.new_id(size), IN_PROGRESS)
    with pytest.raises(TooManySessions):
        table.new_id(size)


@SIZES
def test_failed_logons_do_not_count(size):
    table = SessionTable(CountingRandom())
    for _ in range(MAX_SESSIONS + 1):
        table.settle(table.new_id(size), FAILED)
    assert table.new_id(size) > 0
