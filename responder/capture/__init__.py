"""Recording what the daemon receives and sends (``run --pcap``), and replaying captures.

- ``options``   ``--pcap-rotate`` / ``--pcap-filter`` parsed (imported by config; no I/O)
- ``recorder``  the listeners' tap: a bounded queue and a pcapng writer thread
- ``session``   start and stop a recorder for ``run`` (imported only when recording)

The pcapng and TCP codecs are sans-IO, in :mod:`protocols.capture`; replay is
a tool, :mod:`responder.tools.replay`. Nothing here is imported by ``run``
unless recording is asked for.
"""
