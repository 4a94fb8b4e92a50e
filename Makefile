# scimitar — two commands on a fresh Debian machine: `make run` and `make test`.
# Each installs what it needs (Debian packages, a Python venv) and is quick when already present.

SHELL    := /bin/bash
VENV     ?= .venv
# chromium: the headless browser of the status page test (tests/status_page.rs); nginx: the
# drop-in tests run it side by side with scimitar (tests/nginx_diff.rs) and check fixtures with `nginx -t`.
APT_PKGS := cmake pkg-config libssl-dev redis-server curl openssl chromium nginx
PY_REQS  := scim2-server==0.8.3 scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3 httpx2==2.16.2
CARGO    ?= cargo
# make install: where things go. INSTALL_BIN picks another binary (tests install a debug one).
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
UNITDIR     ?= /lib/systemd/system
INSTALL_BIN ?= target/release/scimitar

.PHONY: all deps sysdeps venv build release install run run-tls test lint fmt check clean bench bench-micro bench-instructions bench-macro bench-goodput bench-tls fuzz

all: build

sysdeps:
	@scripts/ensure-apt.sh $(APT_PKGS)

venv: $(VENV)/.installed

$(VENV)/.installed: Makefile
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(PY_REQS)
	@touch $@

deps: sysdeps venv

build: sysdeps
	$(CARGO) build

release: sysdeps
	$(CARGO) build --release

## make install [PREFIX=/usr/local] [DESTDIR=]: the release binary, $(SYSCONFDIR)/scimitar/scimitar.yaml
## (an existing one is kept) and the systemd unit; as root into /, also the `scimitar` system user
install: $(if $(filter target/release/scimitar,$(INSTALL_BIN)),release)
	install -D -m 0755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/scimitar
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/scimitar
	@conf=$(DESTDIR)$(SYSCONFDIR)/scimitar/scimitar.yaml; \
	if [ -e "$$conf" ]; then echo "kept $$conf (the shipped one is conf/scimitar.yaml)"; \
	else install -m 0644 conf/scimitar.yaml "$$conf"; fi
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/local/bin/scimitar|$(BINDIR)/scimitar|g' -e 's|/etc/scimitar/|$(SYSCONFDIR)/scimitar/|g' \
	  conf/scimitar.service > $(DESTDIR)$(UNITDIR)/scimitar.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/scimitar.service
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && ! id scimitar >/dev/null 2>&1; then \
	  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin scimitar; fi
	@echo "installed; then: systemctl daemon-reload && systemctl enable --now scimitar"

## make run: the proxy on :8080 in front of two local scim2-server replicas
run: deps release
	scripts/run-local.sh

## make run-tls: the same pool behind HTTPS (:8443, HTTP/2) and mTLS (:8444), local CA in .local/tls
run-tls: deps release
	scripts/run-local.sh tls

## make test: lint, unit and integration tests (real scim2-server processes on 127.0.0.1)
test: deps lint
	@mkdir -p target
	set -o pipefail; ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; SCIMITAR_VENV=$(abspath $(VENV)) $(CARGO) test --lib --bins --tests --benches -- --nocapture 2>&1 | tee target/test.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "total: %d passed, %d failed\n", p, f}' target/test.log

## make fuzz [FUZZ_SECONDS=60]: each libFuzzer target of fuzz/ for FUZZ_SECONDS (stable toolchain, no
## sanitizer, no network); seeds in fuzz/corpus/<target>, new inputs in fuzz/target/corpus, crashes in fuzz/artifacts
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := path_route config body http1_head
fuzz: sysdeps
	@scripts/ensure-apt.sh g++
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	$(CARGO) fuzz build --sanitizer none --debug-assertions
	@nonet=""; if unshare -n true 2>/dev/null; then nonet="unshare -n"; fi; failed=""; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t; echo "== fuzz $$t: $(FUZZ_SECONDS)s"; \
	  CARGO_NET_OFFLINE=true $$nonet $(CARGO) fuzz run --sanitizer none --debug-assertions $$t \
	    fuzz/target/corpus/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in$$failed; inputs in fuzz/artifacts/"; exit 1; fi; \
	echo "fuzz: no crash in $(FUZZ_TARGETS)"

## make bench: micro (criterion), macro (vs nginx, HAProxy, bare Pingora), SCIM goodput, TLS (vs nginx) — see benches/README.md
bench: bench-micro bench-instructions bench-macro bench-goodput bench-tls

bench-micro: sysdeps
	$(CARGO) bench --bench micro -- --warm-up-time 1 --measurement-time 2

bench-instructions: sysdeps
	benches/instructions.sh

bench-macro: sysdeps
	benches/macro.sh

bench-goodput: deps
	benches/goodput.sh

bench-tls: sysdeps
	benches/tls.sh

lint: sysdeps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

## make check CONF=file: validate a config like `nginx -t`
check: build
	./target/debug/scimitar -t -c $(or $(CONF),conf/scimitar.yaml)

clean:
	$(CARGO) clean
	rm -rf $(VENV)
