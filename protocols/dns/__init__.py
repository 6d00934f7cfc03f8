"""DNS (RFC 1034/1035, EDNS RFC 6891, TCP RFC 7766), as an authoritative server answers it.

- ``message``    the message codec: bytes <-> :class:`~protocols.dns.message.Message`
- ``authority``  the answering rules for the Cozen zone and reverse names, compiled once
- ``fastpath``   answers precomputed by the authority, keyed by the question's bytes
- ``serial``     the SOA serial: stable across restarts of one config, rising on every change
- ``stream``     RFC 7766 framing of one TCP connection
- ``ownership``  RFC 4701 DHCID and the record sets a node owns in the site's DNS (plain Python)
- ``update_messages``  RFC 2136 UPDATE / query messages and what answers mean (dnspython)
- ``update``     the registration engine: per record set state, refresh, backoff (RFC 4703)

The rule of this package: the fast path only ever returns what the authority
would; anything unusual falls through to the authority, never to a guess.
Registration (``update*``) builds and signs with dnspython's message classes,
never its network functions, and is imported only when it is configured.
"""
