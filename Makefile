# Integration tests start real servers through internal/testserver (temp
# configs, 127.0.0.1, free ports): Apache httpd (Basic, Digest,
# mod_auth_openidc, mod_auth_gssapi with Kerberos and gss-ntlmssp),
# lighttpd, an MIT Kerberos KDC, Squid and Docker's registry
# (docker-registry, with token auth). Nothing here starts or configures a
# system service.
GO       ?= go
PACKAGES := apache2 apache2-utils lighttpd squid krb5-kdc krb5-admin-server krb5-user \
	libapache2-mod-auth-openidc libapache2-mod-auth-gssapi gss-ntlmssp curl heimdal-kcm \
	samba samba-ad-dc samba-ad-provision winbind redis-server nodejs \
	python3-oauthlib python3-jwt python3-cryptography docker-registry

.PHONY: deps test lint nested fuzz-short servers fuzz bench

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Fuzz budgets are execution counts, not durations: with a duration, Go
# 1.26's fuzz coordinator can fail a clean run with "context deadline
# exceeded" at the deadline (golang/go#75804, fixed in Go 1.27).
# 200000 executions take about 15-25 s per target on 2 cores.
FUZZTIME    ?= 200000x

# Install the servers if one is missing (only as root, Debian/apt), then
# fetch the Go modules. A temporary policy-rc.d keeps the packages from
# starting system services on port 80 during the install.
deps:
	@for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing=1; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			if [ ! -e /usr/sbin/policy-rc.d ]; then \
				printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d; \
				trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
			fi; \
			apt-get update && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(PACKAGES); \
		else \
			echo "deps: $(PACKAGES) missing and cannot apt-get install them; integration tests will skip (fail under CI=true)" >&2; \
		fi; \
	fi
	$(GO) mod download

# Everything CI checks: formatting, vet, staticcheck, every test under the
# race detector (integration tests start the real servers themselves), then
# each fuzz target for FUZZTIME executions beyond its seed corpus.
test: deps lint
	$(GO) test -race -count=1 -timeout 8m ./...
	$(MAKE) nested
	$(MAKE) fuzz-short

# The nested modules (kept apart so that the root module does not depend
# on them): the AWS default credential chain, and the go-redis/valkey-go
# measurement (vetted and compiled; its benchmarks run by hand).
nested:
	cd sigv4/awsdefault && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	cd internal/redisclientbench && $(GO) vet ./...

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fuzz-short:
	$(GO) test -run='^$$' -fuzz='^FuzzParseChallenges$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzTransport$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzDigestAuthorize$$' -fuzztime=$(FUZZTIME) ./schemes
	$(GO) test -run='^$$' -fuzz='^FuzzSanitizeChallenge$$' -fuzztime=$(FUZZTIME) ./ntlm
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeToken$$' -fuzztime=$(FUZZTIME) ./negotiate
	$(GO) test -run='^$$' -fuzz='^FuzzKCMCredList$$' -fuzztime=$(FUZZTIME) ./negotiate

# One table of ratios: parsing, cached requests against the bare transport
# and icholy/digest, allocations added, round trips, a 1 GiB replayed
# upload, throughput from 1 to 64 goroutines, mutex contention. Rounds
# interleave the compared benchmarks; about 3 minutes on 2 cores. Not part
# of make test. Flags: make bench BENCHFLAGS='-rounds 3 -benchtime 200ms -v'
bench:
	$(GO) run ./internal/benchtable $(BENCHFLAGS)

# Run both servers until Ctrl-C, to point a client at them.
servers:
	$(GO) run ./internal/testserver/cmd/testservers

# Longer fuzzing (about 3 minutes a target): make fuzz, or FUZZLONG=20000000x make fuzz
FUZZLONG ?= 2000000x
fuzz:
	$(MAKE) fuzz-short FUZZTIME=$(FUZZLONG)
