"""NetBIOS over TCP/IP (RFC 1001/1002, MS-NBTE): names, the name service, the session service.

- ``names``         NetBIOS names and their first-level encoding (shared by NBNS and NBSS)
- ``nbns``          name service messages (UDP 137): the decoder and message classes
- ``nbns_encode``   the matching encoders
- ``node``          ``NbnsNode``: one node's names: answers, defense, conflicts, its engines
- ``registration``  what the two registration engines share (records, outbox, events)
- ``claim``         B-node claim at start and release at stop, by broadcast
- ``wins``          the WINS (NBNS server) client of an H-node: register, refresh, release
- ``nbss``          session service framing (TCP 139) and direct TCP framing (445)

The rule of this package: a node answers only for its own names, never with a
negative answer, and never for the cluster's public name.
"""
