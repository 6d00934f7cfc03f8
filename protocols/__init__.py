"""Sans-IO protocol codecs and state machines: bytes in, typed messages out.

The one rule of this layer: no sockets, no event loop, no logging set-up and no
clock. Time, randomness and identity come in as arguments, so every rule can be
tested with plain bytes and the daemon in ``responder/`` stays a thin adapter.

The rule of cost (issue 11): decoding one message costs bounded, small work,
whatever its bytes (2 ms of CPU at most for the largest message a transport
carries). Every loop over message content runs at most a named budget's
number of times (records, name steps, options, list entries, dialects,
contexts, pointer hops, nesting), and anything longer is one C call over
bytes the message size already bounds (a slice, ``bytes.find``, a codec,
``struct``). Past a budget the message is
:class:`~protocols.errors.Unsupported`, answered like any other malformed
one. Stream sessions answer a bounded batch of messages per call and say
when more wait (``pending``). ``tests/protocols/*/test_worst_inputs.py``
counts the work of each decoder's worst inputs;
``python -m benchmarks.worst_inputs`` times them.

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
