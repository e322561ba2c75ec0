# Integration tests start real Apache httpd and lighttpd through
# internal/testserver (temp configs, 127.0.0.1, free ports); nothing here
# starts or configures a system service.
GO       ?= go
SERVERS  := /usr/sbin/apache2 /usr/sbin/lighttpd
PACKAGES := apache2 apache2-utils lighttpd

.PHONY: deps test servers fuzz

# Install the servers if one is missing (only as root, Debian/apt), then
# fetch the Go modules. A temporary policy-rc.d keeps the packages from
# starting system services on port 80 during the install.
deps:
	@for b in $(SERVERS); do [ -x $$b ] || missing=1; done; \
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

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 8m ./...

# Run both servers until Ctrl-C, to point a client at them.
servers:
	$(GO) run ./internal/testserver/cmd/testservers

fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzParseChallenges -fuzztime=60s .
