"""``[registration.dns]``: every key's default and validation, each error as one line."""

from __future__ import annotations

import base64
import ipaddress
import os
import subprocess
import sys

import pytest

from responder.config import ConfigError, load_config
from tests.helpers import BASE_CONFIG, REPO

SECRET = base64.b64encode(b"k" * 32).decode()
MINIMAL = f'[registration.dns]\ntsig_name = "cozen-key"\ntsig_secret = "{SECRET}"\n'
V6_NODE = (
    '\n[[node]]\ncozen_name = "SQL01-CZ3"\nmanagement_ip = "127.0.1.13"\n'
    'management_ipv6 = "fd00:0:0:1::13"\n'
)


def load(write_config, section: str, nodes: str = ""):
    return load_config(str(write_config(BASE_CONFIG + nodes + section)))


def error(write_config, section: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(write_config, section)
    return caught.value


def test_absent_means_off(write_config):
    assert load(write_config, "").registration is None
    assert load(write_config, "[registration]\n").registration is None


def test_defaults(write_config):
    reg = load(write_config, MINIMAL, V6_NODE).registration
    assert reg is not None
    assert reg.server is None and reg.port == 53
    assert reg.zone == "corp.example"
    assert reg.reverse_zones == (
        "0.0.127.in-addr.arpa",
        "1.0.127.in-addr.arpa",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
    )
    assert reg.ttl == 300  # dns.ttl
    assert (reg.auth, reg.tsig_name, reg.tsig_algorithm) == ("tsig", "cozen-key", "hmac-sha256")
    assert reg.tsig_secret == b"k" * 32 and reg.tsig_secret_file is None
    assert reg.refresh_seconds == 600 and reg.withdraw_on_stop
    assert reg.conflict == "check-with-dhcid"
    assert SECRET not in repr(reg) and "kkkk" not in repr(reg)


def test_every_key(write_config):
    reg = load(
        write_config,
        '[registration.dns]\nserver = "127.0.0.53"\nport = 5353\nzone = "Example."\n'
        'reverse_zones = ["127.in-addr.arpa"]\nttl = 60\nauth = "tsig"\n'
        'tsig_name = "Cozen-Key."\ntsig_algorithm = "HMAC-SHA512"\n'
        f'tsig_secret = "{SECRET}"\nrefresh_seconds = 30\nwithdraw_on_stop = false\n'
        'conflict = "check-exists-with-dhcid"\n',
    ).registration
    assert reg is not None
    assert reg.server == ipaddress.ip_address("127.0.0.53") and reg.port == 5353
    assert reg.zone == "example" and reg.reverse_zones == ("127.in-addr.arpa",)
    assert (reg.ttl, reg.tsig_name, reg.tsig_algorithm) == (60, "cozen-key", "hmac-sha512")
    assert reg.refresh_seconds == 30 and not reg.withdraw_on_stop
    assert reg.conflict == "check-exists-with-dhcid"


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ('server = "dns.corp.example"', "server", "is not an IP address"),
        ("port = 0", "port", "between 1 and 65535"),
        ('zone = "other.example"', "zone", "does not hold the Cozen name 'sql01-cz1.corp.example'"),
        ('zone = "bad..zone"', "zone", "invalid DNS label"),
        ('reverse_zones = "0.0.127.in-addr.arpa"', "reverse_zones", "must be a list"),
        ('reverse_zones = ["corp.example"]', "reverse_zones", "not a zone under in-addr.arpa"),
        ('reverse_zones = ["in-addr.arpa"]', "reverse_zones", "not a zone under in-addr.arpa"),
        ('reverse_zones = ["127.in-addr.arpa", "127.IN-ADDR.ARPA."]', "reverse_zones", "twice"),
        ("ttl = -1", "ttl", "between 0 and"),
        ('auth = "none"', "auth", 'must be "tsig"'),
        ('tsig_algorithm = "hmac-sha224"', "tsig_algorithm", "must be one of hmac-sha256"),
        ("refresh_seconds = 0", "refresh_seconds", "between 1 and 604800"),
        ('withdraw_on_stop = "yes"', "withdraw_on_stop", "must be true or false"),
        ('conflict = "overwrite"', "conflict", "must be one of check-with-dhcid"),
        ('colour = "blue"', "colour", "unknown key"),
    ],
)
def test_invalid_values(write_config, extra, key, reason):
    exc = error(write_config, f"{MINIMAL}{extra}\n")
    assert exc.key == f"registration.dns.{key}"
    assert reason in exc.reason
    assert str(exc).startswith(f"{exc.source}: registration.dns.{key}: ")
    assert "\n" not in str(exc)


GSS = (
    '[registration.dns]\nauth = "gss-tsig"\nprincipal = "cozen/sidecar.corp.example@CORP.EXAMPLE"\n'
)


def keytab(tmp_path, mode: int = 0o600):
    path = tmp_path / "cozen.keytab"
    path.write_bytes(b"\x05\x02")
    os.chmod(path, mode)
    return path


def test_gss_tsig_defaults(write_config):
    reg = load(write_config, GSS).registration
    assert reg is not None and reg.auth == "gss-tsig"
    assert reg.principal == "cozen/sidecar.corp.example@CORP.EXAMPLE"
    assert reg.keytab is None and reg.server_principal is None  # KRB5CCNAME; DNS/<MNAME>
    assert (reg.tkey_lifetime, reg.rekey_seconds, reg.accept_bad_direction) == (3600, 2700, False)
    assert reg.tsig_name == "" and reg.tsig_secret == b""


def test_gss_tsig_every_key(write_config, tmp_path):
    path = keytab(tmp_path)
    reg = load(
        write_config,
        f'{GSS}keytab = "{path}"\nserver_principal = "DNS/ns.corp.example"\n'
        "tkey_lifetime = 600\nrekey_seconds = 300\naccept_bad_direction = true\n",
    ).registration
    assert reg is not None and reg.keytab == str(path)
    assert reg.server_principal == "DNS/ns.corp.example"
    assert (reg.tkey_lifetime, reg.rekey_seconds, reg.accept_bad_direction) == (600, 300, True)


def test_gss_rekey_defaults_within_a_short_lifetime(write_config):
    reg = load(write_config, f"{GSS}tkey_lifetime = 600\n").registration
    assert reg is not None and reg.rekey_seconds == 450


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ('principal = "no-realm"', "principal", "Kerberos principal"),
        ('principal = "a@B@C"', "principal", "Kerberos principal"),
        ('server_principal = "DNS/ns@@X"', "server_principal", "Kerberos principal"),
        ("tkey_lifetime = 10", "tkey_lifetime", "between 60"),
        ("rekey_seconds = 3600", "rekey_seconds", "less than tkey_lifetime (3600)"),
        ("rekey_seconds = 0", "rekey_seconds", "between 1"),
        ('accept_bad_direction = "yes"', "accept_bad_direction", ""),
        ('keytab = ""', "keytab", "file path"),
        ('keytab = "/nonexistent/cozen.keytab"', "keytab", "cannot read"),
        ('tsig_name = "cozen-key"', "tsig_name", 'belongs to auth = "tsig"'),
        (f'tsig_secret = "{SECRET}"', "tsig_secret", 'belongs to auth = "tsig"'),
    ],
)
def test_gss_tsig_key_errors(write_config, extra, key, reason):
    text = GSS.replace('principal = "cozen', 'principal = "cozen') + extra + "\n"
    if extra.startswith("principal"):
        text = '[registration.dns]\nauth = "gss-tsig"\n' + extra + "\n"
    exc = error(write_config, text)
    assert exc.key == f"registration.dns.{key}"
    assert reason in exc.reason


def test_gss_principal_is_required(write_config):
    exc = error(write_config, '[registration.dns]\nauth = "gss-tsig"\n')
    assert exc.key == "registration.dns.principal"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_keytab_readable_by_others_is_refused(write_config, tmp_path, mode):
    path = keytab(tmp_path, mode)
    exc = error(write_config, f'{GSS}keytab = "{path}"\n')
    assert exc.key == "registration.dns.keytab"
    assert exc.reason == f"{path} is readable by group or others (mode {mode:04o}); chmod 600 it"


def test_a_relative_keytab_is_taken_from_the_config_directory(write_config, tmp_path):
    keytab(tmp_path)
    reg = load(write_config, f'{GSS}keytab = "cozen.keytab"\n').registration
    assert reg is not None and reg.keytab == str(tmp_path / "cozen.keytab")


def test_an_unknown_auth_is_refused(write_config):
    exc = error(write_config, f'{MINIMAL}auth = "kerberos"\n')
    assert exc.key == "registration.dns.auth" and '"gss-tsig"' in exc.reason


@pytest.mark.parametrize(
    "key",
    ["principal", "keytab", "server_principal", "tkey_lifetime", "rekey_seconds"],
)
def test_gss_keys_are_refused_with_tsig(write_config, key):
    exc = error(write_config, f'{MINIMAL}{key} = "x"\n')
    assert exc.key == f"registration.dns.{key}"
    assert 'belongs to auth = "gss-tsig"' in exc.reason


def test_gss_tsig_without_gssapi_says_how_to_add_it(write_config, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gssapi" else real(name, *a)
    )
    exc = error(write_config, GSS)
    assert exc.key == "registration.dns.auth"
    assert "pip install cozen-responder[gss]" in exc.reason


def test_an_unknown_registration_table_is_refused(write_config):
    exc = error(write_config, '[registration.wins]\nserver = "127.0.0.1"\n')
    assert exc.key == "registration.wins"


def test_key_name_and_secret_are_required(write_config):
    assert error(write_config, f'[registration.dns]\ntsig_secret = "{SECRET}"\n').key == (
        "registration.dns.tsig_name"
    )
    exc = error(write_config, '[registration.dns]\ntsig_name = "k"\n')
    assert exc.key == "registration.dns.tsig_secret" and "tsig_secret_file" in exc.reason


@pytest.mark.parametrize("secret", ["not base64!", ""])
def test_the_secret_must_be_base64(write_config, secret):
    exc = error(write_config, f'[registration.dns]\ntsig_name = "k"\ntsig_secret = "{secret}"\n')
    assert exc.key == "registration.dns.tsig_secret"


def test_inline_and_file_secret_are_exclusive(write_config, tmp_path):
    exc = error(write_config, f'{MINIMAL}tsig_secret_file = "{tmp_path / "s"}"\n')
    assert exc.key == "registration.dns.tsig_secret_file" and "not both" in exc.reason


def secret_file(tmp_path, text: str, mode: int):
    path = tmp_path / "cozen.key"
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_secret_file_owner_only(write_config, tmp_path, mode):
    path = secret_file(tmp_path, SECRET + "\n", mode)
    section = f'[registration.dns]\ntsig_name = "k"\ntsig_secret_file = "{path}"\n'
    reg = load(write_config, section).registration
    assert reg is not None and reg.tsig_secret == b"k" * 32 and reg.tsig_secret_file == str(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620])
def test_secret_file_readable_by_others_is_refused(write_config, tmp_path, mode):
    path = secret_file(tmp_path, SECRET, mode)
    exc = error(write_config, f'[registration.dns]\ntsig_name = "k"\ntsig_secret_file = "{path}"\n')
    assert exc.key == "registration.dns.tsig_secret_file"
    assert exc.reason == (f"{path} is readable by group or others (mode {mode:04o}); chmod 600 it")


def test_secret_file_may_be_a_bind_key_statement_and_relative(write_config, tmp_path):
    statement = f'key "cozen-key" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'
    secret_file(tmp_path, statement, 0o600)
    section = '[registration.dns]\ntsig_name = "cozen-key"\ntsig_secret_file = "cozen.key"\n'
    reg = load(write_config, section).registration  # relative to the config file's directory
    assert reg is not None and reg.tsig_secret == b"k" * 32


def test_missing_secret_file(write_config, tmp_path):
    exc = error(
        write_config, f'[registration.dns]\ntsig_name = "k"\ntsig_secret_file = "{tmp_path}/no"\n'
    )
    assert exc.key == "registration.dns.tsig_secret_file" and "cannot read" in exc.reason


def test_check_prints_one_line_for_gss_tsig_without_a_principal(write_config):
    path = write_config(BASE_CONFIG + '[registration.dns]\nauth = "gss-tsig"\n')
    done = subprocess.run(
        [sys.executable, "-m", "responder", "check", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"cozen-responder: {path}: registration.dns.principal: required key is missing\n"
    )


def test_check_describes_gss_tsig(write_config):
    path = write_config(
        BASE_CONFIG + GSS + 'server = "127.0.0.53"\nserver_principal = "DNS/ns.corp.example"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "responder", "check", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "gss-tsig as cozen/sidecar.corp.example@CORP.EXAMPLE (credential cache) to "
        "DNS/ns.corp.example, rekey 2700 s" in done.stdout
    )
