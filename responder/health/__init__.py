"""Monitoring: what the health service (``services/health.py``) serves on ``[health] listen``.

Nothing here is imported unless ``[health] listen`` is configured: h11 and
prometheus_client stay out of the daemon's start-up and its answer path.

- ``view``       what the health modules read of the daemon (a Protocol), and the reload record
- ``http``       one HTTP/1.1 connection through h11 (sans-IO): request in, response bytes out
- ``endpoints``  the routes: /livez, /readyz (/healthz), /status, /metrics, / (the status page)
- ``readiness``  every listener bound on a present address, no NetBIOS conflict, probes passed
- ``probes``     self-probes: the daemon asks itself, over the network, what a client would
- ``audits``     the ``audit`` command run every ``[health] audit_interval``; its last run
- ``periodic``   now and every N seconds: the schedule probes and audits share
- ``metrics``    a prometheus_client Collector over the daemon's counters, built at scrape time
- ``board``      the shared memory through which worker processes publish their counters
- ``page``       the HTML status page

The rule of this package: it reads the services' state and counters; it never
changes what or how they answer.
"""
