"""The authentication mechanisms SMB carries (GSS-API tokens), as a server presents them.

- ``spnego``   SPNEGO negTokenInit/negTokenResp (RFC 4178, MS-SPNG)
- ``ntlmssp``  NTLMSSP NEGOTIATE / CHALLENGE / AUTHENTICATE (MS-NLMP)
- ``_der``     the bounded DER subset SPNEGO needs

The rule of this package: it presents an identity and never authenticates
anyone; a CHALLENGE names the node, and every named AUTHENTICATE fails.
"""
