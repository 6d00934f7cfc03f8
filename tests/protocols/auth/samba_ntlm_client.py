"""Samba's own NTLMSSP client (gensec), driven over stdin/stdout as hex lines.

Run with the interpreter that has Samba's Python bindings (the one Samba's
tools use). Argument: a smb.conf path. Prints the NEGOTIATE, reads a
CHALLENGE, prints the AUTHENTICATE. Anything Samba dislikes in the CHALLENGE
surfaces as an exception and a non-zero exit.
"""

import sys

from samba import credentials, gensec
from samba.param import LoadParm


def main() -> None:
    lp = LoadParm()
    lp.load(sys.argv[1])
    creds = credentials.Credentials()
    creds.guess(lp)
    creds.set_username(sys.argv[2])
    creds.set_domain("CORP")
    creds.set_password(sys.argv[3])
    creds.set_workstation("WKS7")
    if not sys.argv[2]:
        creds.set_anonymous()
    client = gensec.Security.start_client(settings={"lp_ctx": lp, "target_hostname": "sql01-cz1"})
    client.set_credentials(creds)
    client.want_feature(gensec.FEATURE_SIGN)
    client.start_mech_by_name("ntlmssp")
    _, negotiate = client.update(b"")
    print(negotiate.hex(), flush=True)
    challenge = bytes.fromhex(sys.stdin.readline().strip())
    _, authenticate = client.update(challenge)
    print(authenticate.hex(), flush=True)


if __name__ == "__main__":
    main()
