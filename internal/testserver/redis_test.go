package testserver

import (
	"os"
	"testing"
)

// TestRedis: redis-server answers PING on 127.0.0.1, stops, and starts
// again on the same port; Close removes its directory.
func TestRedis(t *testing.T) {
	r, err := StartRedis()
	if err != nil {
		if InCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Logf("%s on %s, up in %v", r.Binary, r.Addr, r.Startup)
	if err := ping(r.Addr); err != nil {
		t.Fatalf("PING: %v\n%s", err, r.Log())
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(r.Addr); err == nil {
		t.Fatal("PING answered after Stop")
	}
	addr := r.Addr
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ping(r.Addr); err != nil || r.Addr != addr {
		t.Fatalf("after Start: PING %v on %s, want %s", err, r.Addr, addr)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", r.Dir, err)
	}
}
