# cozen-responder: every target installs what it needs (virtualenv from pyproject.toml,
# Debian clients through apt-get when missing). `make run` and `make test` are the two to know.

PYTHON3 ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
# One stamp per extra: `make run` installs only what the daemon needs (uvloop); lint, type
# and interop add the test tools, `make test` and `make bench` also the plotting.
STAMP   := $(VENV)/.installed-run
TEST_STAMP  := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
CONFIG  ?=
FUZZ_SECONDS ?= 60
FUZZ_DIR     ?= .fuzz
FUZZ_TARGETS := $(sort $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.py))))
# command:package pairs for the real clients and peers the tests and benchmarks run (the
# suite runs offline in a private network namespace, so everything is installed beforehand;
# named, knotd and faketime serve the DNS registration tests; the MIT KDC and its tools the
# GSS-TSIG ones, and libkrb5-dev (krb5-config) lets pip build the gssapi binding of the test extra)
DEBIAN_TOOLS := ip:iproute2 dig:bind9-dnsutils kdig:knot-dnsutils tshark:tshark nmap:nmap \
                nmblookup:samba-common-bin smbclient:smbclient nbtscan:nbtscan nmbd:samba \
                dnsperf:dnsperf knotd:knot dnsmasq:dnsmasq-base systemd-analyze:systemd \
                chromium:chromium promtool:prometheus named:bind9 faketime:faketime \
                krb5kdc:krb5-kdc kdb5_util:krb5-kdc kadmin.local:krb5-admin-server \
                kinit:krb5-user krb5-config:libkrb5-dev

.PHONY: install install-test install-bench tools run check-config fmt lint type test test-debug interop bench fuzz cov clean check

$(STAMP): pyproject.toml setup.py responder/net/_udploop.c
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(STAMP)

# the test extra builds gssapi, which needs libkrb5-dev: the Debian tools come first
$(TEST_STAMP): $(STAMP) | tools
	$(PY) -m pip install -q -e '.[test]'
	touch $(TEST_STAMP)

$(BENCH_STAMP): $(TEST_STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

install: $(STAMP)
install-test: $(TEST_STAMP)
install-bench: $(BENCH_STAMP)

tools:
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; fi

run: install
	$(VENV)/bin/cozen-responder run $(if $(CONFIG),--config $(CONFIG))

check-config: install
	$(VENV)/bin/cozen-responder check $(if $(CONFIG),--config $(CONFIG))

fmt: install-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

type: install-test
	$(VENV)/bin/mypy

# the suite includes the benchmark's smoke run, which draws its chart: the bench extra too
test: tools install-bench lint type
	$(PY) -bb -m pytest -q

# asyncio's debug mode, and the compiled UDP loop's tests under ASan and UBSan (`sanitize`)
test-debug: install-test tools
	PYTHONASYNCIODEBUG=1 COZEN_TEST_LOOPS=asyncio $(PY) -bb -m pytest -q -m "not slow or sanitize"

interop: install-test tools
	$(PY) -bb -m pytest -q -m interop

bench: install-bench
	$(PY) -m benchmarks.run $(BENCH_ARGS)

# every fuzz target (tests/fuzz) for FUZZ_SECONDS; each keeps its corpus under $(FUZZ_DIR)/corpus
# and a crash stops the run, its input in $(FUZZ_DIR)/crashes (make test runs a few seconds of each)
fuzz: install-test
	mkdir -p $(FUZZ_DIR)/crashes
	@for target in $(FUZZ_TARGETS); do echo "== $$target: $(FUZZ_SECONDS) s"; \
	  $(PY) -bb -m tests.fuzz.$$target -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/crashes/$$target- $(FUZZ_DIR)/corpus/$$target || exit 1; done

cov: install-bench tools
	$(PY) -m pip install -q coverage
	$(PY) -m coverage run -m pytest -q && $(PY) -m coverage report

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz benchmarks/results benchmarks/build

check: lint type test
