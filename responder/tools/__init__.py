"""Tools that look at the network the way scanners and clients do: ``probe`` and ``audit``.

- ``result``  what a probe saw, typed per protocol (JSON-ready); the names each presents
- ``wire``    sans-IO: the requests a scanner sends and what the answers say
- ``probe``   asyncio: one address, every protocol, bounded by timeouts; many concurrently
- ``render``  the table and the JSON of probe results
- ``table``   a small fixed-width table printer
- ``audit``   every node of a config probed and checked against responder.identity
- ``replay``  captures re-answered and diffed: ``replay_capture`` (capture -> exchanges),
  ``replay_answer`` (in process or live), ``replay_compare`` (fields, masks), ``replay_label``

- ``commands`` the ``probe``, ``audit`` and ``replay`` entries of ``cli.COMMANDS`` (argparse only)

The rule of this package: the daemon never loads its machinery (``cli`` imports only
``commands``, which imports the rest when ``probe`` or ``audit`` runs), and it speaks
only through the project's own codecs in ``protocols/``.
"""
