"""The daemon: asyncio adapters around the sans-IO codecs in ``protocols/``.

Read it top-down:

- ``cli``        the command line, a table of commands (``run``, ``check``)
- ``app``        lifecycle: start the services, reload on SIGHUP, stop on SIGTERM
- ``config``     the TOML file validated into immutable settings (``_toml``: its engine;
                 ``_config_registration``: its ``[registration]`` section)
- ``identity``   what each node presents, derived once from the config
- ``describe``   the text ``check`` prints
- ``workers``    extra worker processes sharing the DNS ports
- ``net/``       sockets: UDP and TCP listeners, the compiled UDP loop, listener sets
- ``services/``  one service per protocol (DNS, NBNS, SMB, health, DNS registration) with the
                 same verbs

The rule of this layer: a packet goes listener -> codec -> identity -> codec ->
send; protocol decisions are the codecs', never the adapters'.
"""
