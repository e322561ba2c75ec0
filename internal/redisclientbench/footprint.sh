#!/usr/bin/env bash
# Binary size (-ldflags='-s -w') of a one-GET program per client, the
# modules linked into it, and the module graph a module requiring only
# that client gets (go list -m all, go mod graph), at the versions in
# this module's go.mod.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '| client | version | binary (-s -w) | modules linked | go list -m all | go mod graph edges |\n|---|---|---|---|---|---|\n'
for pair in goredisget:github.com/redis/go-redis/v9 valkeyget:github.com/valkey-io/valkey-go; do
	cmd=${pair%%:*} mod=${pair#*:}
	ver=$(go list -m -f '{{.Version}}' "$mod")
	go build -trimpath -ldflags='-s -w' -o "$tmp/$cmd" "./cmd/$cmd"
	size=$(stat -c %s "$tmp/$cmd")
	linked=$(go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}}{{end}}{{end}}' "./cmd/$cmd" | sort -u | grep -c . || true)
	mkdir "$tmp/m-$cmd" && cp "cmd/$cmd/main.go" "$tmp/m-$cmd/"
	(cd "$tmp/m-$cmd" && go mod init example.com/"$cmd" >/dev/null 2>&1 && go get "$mod@$ver" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1)
	all=$(cd "$tmp/m-$cmd" && go list -m all | tail -n +2 | wc -l)
	edges=$(cd "$tmp/m-$cmd" && go mod graph | wc -l)
	printf '| %s | %s | %d KiB | %d | %d | %d |\n' "$mod" "$ver" $((size / 1024)) "$linked" "$all" "$edges"
done
