"""Coverage-guided fuzz targets, one per decoder and service entry point (issue 11).

``runner`` is shared; every ``fuzz_*`` module is one target, run as
``python -m tests.fuzz.fuzz_NAME`` (``make fuzz`` runs each for FUZZ_SECONDS;
``test_fuzz_smoke`` runs each for a few seconds as part of the suite).
"""
