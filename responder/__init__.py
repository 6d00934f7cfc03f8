"""The daemon: asyncio adapters around the sans-IO codecs in ``protocols/``.

Read it top-down:

- ``cli``        the command line, a table of commands (``run``, ``check``, ``probe``, ``audit``)
- ``app``        lifecycle: start the services, reload on SIGHUP, stop on SIGTERM
- ``config``     the TOML file validated into immutable settings (``_toml``: its engine;
                 ``_config_registration``: its ``[registration]`` section)
- ``identity``   what each node presents, derived once from the config
- ``describe``   the text ``check`` prints
- ``streams``    stdout, stderr and the log: closed, broken or full, never a traceback
- ``workers``    extra worker processes sharing the DNS ports, supervised and restarted
- ``logs``       log set-up: text or JSON lines, floods summarised
- ``systemd``    the notify protocol (READY, RELOADING, STOPPING, WATCHDOG)
- ``privileges`` ``run --user``: drop root after binding, keep CAP_NET_BIND_SERVICE
- ``openfiles``  raise the open-files soft limit; refuse a config the hard one cannot hold
- ``offload``    pure work (config, identities, answer tables) in a thread beside the loop
- ``tools/``     ``probe`` and ``audit``: the network as scanners see it (``run`` never loads it)
- ``net/``       sockets: UDP and TCP listeners, the compiled UDP loop, listener sets
- ``services/``  one service per protocol (DNS, NBNS, SMB, health, DNS registration) with the
                 same verbs
- ``health/``    what the health service serves: readiness, self-probes, periodic audit, metrics,
                 status page
- ``capture/``   ``run --pcap``: the recorder behind the listeners' tap (imported only then)

The rule of this layer: a packet goes listener -> codec -> identity -> codec ->
send; protocol decisions are the codecs', never the adapters'.
"""

__version__ = "0.1.0"  # when not installed; pyproject.toml has the same
