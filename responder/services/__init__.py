"""One service per protocol, each with the same verbs: ``apply(config, serial)``, ``stop()``,
``status()``.

- ``dns``     authoritative DNS on UDP and TCP 53
- ``nbns``    NetBIOS name service on UDP 137: answers, claims, defense, WINS
- ``smb``     NBSS on TCP 139 and SMB on TCP 445: NEGOTIATE and the NTLMSSP CHALLENGE
- ``health``  /livez, /readyz, /status, /metrics and a status page over HTTP; self-probes
- ``limits``  ``[limits]`` turned into a UDP service's guard (reflection filter, rate limiter)
- ``registration``  each node's records kept in the site's DNS (RFC 2136 UPDATE, TSIG, RFC 4703)

The rule of this package: a service binds, routes bytes to a codec and sends
what it returns (registration: sends what its engine hands out); what a node
presents comes from ``responder.identity``.
"""
