"""Sans-IO protocol codecs and state machines: bytes in, typed messages out.

The one rule of this layer: no sockets, no event loop, no logging set-up and no
clock. Time, randomness and identity come in as arguments, so every rule can be
tested with plain bytes and the daemon in ``responder/`` stays a thin adapter.

One subpackage per protocol family:

- ``dns/``      DNS message codec, the authority, its precomputed fast path, TCP framing
- ``netbios/``  NetBIOS names, name service (NBNS) messages and engines, session service (NBSS)
- ``smb/``      SMB1 and SMB2/3 identity messages and the per-connection session
- ``auth/``     the GSS mechanisms SMB (and later DNS registration) carry: NTLMSSP, SPNEGO, DER
- ``capture/``  packet captures: pcapng written, pcap/pcapng read, TCP synthesized and reassembled

Shared by every family:

- ``_wire``     bounded reader and writer; over-reads become :class:`errors.Truncated`
- ``errors``    the one error family every codec raises for hostile input
- ``repeats``   the repeats table the UDP fast paths share with the compiled UDP loop
- ``ratelimit`` the reflection filter and per-source rate limiter every UDP answer passes
"""
