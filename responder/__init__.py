"""The daemon: asyncio adapters around the sans-IO codecs in ``protocols/``.

Read it top-down:

- ``cli``        the command line, a table of commands (``run``, ``check``, ``probe``, ``audit``)
- ``app``        lifecycle: start the services, reload on SIGHUP, stop on SIGTERM
- ``config``     the TOML file validated into immutable settings (``_toml``: its engine)
- ``identity``   what each node presents, derived once from the config
- ``describe``   the text ``check`` prints
- ``streams``    stdout, stderr and the log: closed, broken or full, never a traceback
- ``workers``    extra worker processes sharing the DNS ports, supervised and restarted
- ``tools/``     ``probe`` and ``audit``: the network as scanners see it (``run`` never loads it)
- ``net/``       sockets: UDP and TCP listeners, the compiled UDP loop, listener sets
- ``services/``  one service per protocol (DNS, NBNS, SMB, health) with the same verbs
- ``health/``    what the health service serves: readiness, self-probes, metrics, status page
- ``capture/``   ``run --pcap``: the recorder behind the listeners' tap (imported only then)

The rule of this layer: a packet goes listener -> codec -> identity -> codec ->
send; protocol decisions are the codecs', never the adapters'.
"""
