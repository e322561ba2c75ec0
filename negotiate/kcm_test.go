package negotiate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Serialization helpers (ccache v4) for the fake daemon.

func kcmPrinc(nameType int32, realm string, comps ...string) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(nameType))
	b = binary.BigEndian.AppendUint32(b, uint32(len(comps)))
	for _, s := range append([]string{realm}, comps...) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func kcmCred(client, server []byte, key []byte, start, end time.Time, ticket []byte) []byte {
	b := append(append([]byte{}, client...), server...)
	b = binary.BigEndian.AppendUint16(b, 18) // aes256-cts-hmac-sha1-96
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	for _, t := range []time.Time{start, start, end, end} { // auth, start, end, renew till
		b = binary.BigEndian.AppendUint32(b, uint32(t.Unix()))
	}
	b = append(b, 0)                                 // is_skey
	b = binary.BigEndian.AppendUint32(b, 0x40e10000) // flags: forwardable, renewable, initial, pre-authent
	b = binary.BigEndian.AppendUint32(b, 0)          // addresses
	b = binary.BigEndian.AppendUint32(b, 0)          // authdata
	b = binary.BigEndian.AppendUint32(b, uint32(len(ticket)))
	b = append(b, ticket...)
	return binary.BigEndian.AppendUint32(b, 0) // second ticket
}

// fakeKCM is a KCM daemon in the test: one cache, answering
// GET_CRED_LIST when list is set (as sssd does), else
// KRB5_FCC_INTERNAL (as Heimdal does).
type fakeKCM struct {
	socket  string
	name    string
	princ   []byte // nil: the cache has no principal
	creds   [][]byte
	list    bool
	badCred bool // answer a truncated credential
	t       *testing.T

	mu       sync.Mutex // guards princ (which a test changes) and requests
	requests []uint16
}

func (f *fakeKCM) setPrinc(p []byte) {
	f.mu.Lock()
	f.princ = p
	f.mu.Unlock()
}

func (f *fakeKCM) ops() []uint16 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint16(nil), f.requests...)
}

func startFakeKCM(t *testing.T, f *fakeKCM) *fakeKCM {
	f.t = t
	dir, err := os.MkdirTemp("", "kcm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f.socket = filepath.Join(dir, "s")
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeKCM) serve(c net.Conn) {
	defer c.Close()
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		req := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(c, req); err != nil || len(req) < 4 || req[0] != 2 || req[1] != 0 {
			f.t.Errorf("malformed request %x", req)
			return
		}
		op := binary.BigEndian.Uint16(req[2:])
		f.mu.Lock()
		f.requests = append(f.requests, op)
		princ := f.princ
		f.mu.Unlock()
		args := req[4:]
		var code int32
		var payload []byte
		name, rest, _ := bytes.Cut(args, []byte{0})
		switch {
		case op == kcmOpGetDefaultCache:
			payload = append([]byte(f.name), 0)
		case string(name) != f.name:
			code = kcmFCCNoFile
		case op == kcmOpGetPrincipal:
			payload = princ // nil: Heimdal's code 0 and no principal
		case op == kcmOpGetCredList && f.list:
			payload = binary.BigEndian.AppendUint32(nil, uint32(len(f.creds)))
			for _, cr := range f.creds {
				payload = binary.BigEndian.AppendUint32(payload, uint32(len(cr)))
				payload = append(payload, cr...)
			}
		case op == kcmOpGetCredUUIDList:
			for i := range f.creds {
				payload = append(payload, bytes.Repeat([]byte{byte(i)}, kcmUUIDLen)...)
			}
			payload = append(payload, bytes.Repeat([]byte{0xee}, kcmUUIDLen)...) // removed meanwhile
		case op == kcmOpGetCredByUUID && len(rest) == kcmUUIDLen:
			if i := int(rest[0]); i < len(f.creds) {
				payload = f.creds[i]
				if f.badCred {
					payload = payload[:len(payload)-3]
				}
			} else {
				code = kcmCCEnd
			}
		default:
			code = kcmFCCInternal
		}
		body := binary.BigEndian.AppendUint32(nil, uint32(code))
		body = append(body, payload...)
		out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		out = binary.BigEndian.AppendUint32(out, 0)
		if _, err := c.Write(append(out, body...)); err != nil {
			return
		}
	}
}

// TestKCMProtocol reads a cache from a fake daemon both ways (the MIT
// GET_CRED_LIST and the Heimdal UUID walk) and checks what comes back,
// the spool file, and the errors of an empty cache, a missing daemon and
// a malformed reply.
func TestKCMProtocol(t *testing.T) {
	const realm = "EXAMPLE.TEST"
	now := time.Now().Truncate(time.Second)
	alice := kcmPrinc(nametype.KRB_NT_PRINCIPAL, realm, "alice")
	tgt := kcmCred(alice, kcmPrinc(nametype.KRB_NT_SRV_INST, realm, "krbtgt", realm), bytes.Repeat([]byte{1}, 32), now, now.Add(time.Hour), []byte("tgt-ticket"))
	conf := kcmCred(alice, kcmPrinc(nametype.KRB_NT_PRINCIPAL, "X-CACHECONF:", "krb5_ccache_conf_data", "pa_type", "krbtgt/"+realm+"@"+realm), nil, time.Unix(0, 0), time.Unix(0, 0), []byte("2"))
	svc := kcmCred(alice, kcmPrinc(nametype.KRB_NT_SRV_HST, realm, "HTTP", "www.example.test"), bytes.Repeat([]byte{2}, 32), now, now.Add(time.Hour), []byte("http-ticket"))
	other := kcmCred(alice, kcmPrinc(nametype.KRB_NT_SRV_INST, realm, "krbtgt", "OTHER.TEST"), bytes.Repeat([]byte{3}, 32), now, now.Add(time.Hour), []byte("cross"))

	for _, list := range []bool{true, false} {
		f := startFakeKCM(t, &fakeKCM{name: "1000:x", princ: alice, creds: [][]byte{conf, svc, other, tgt}, list: list})
		c, err := readKCM(f.socket, "")
		if err != nil {
			t.Fatalf("list=%v: %v", list, err)
		}
		if c.name != "1000:x" || c.list != list || len(c.creds) != 4 {
			t.Fatalf("list=%v: name %q, list %v, %d creds; requests %v", list, c.name, c.list, len(c.creds), f.ops())
		}
		cc, err := c.CCache()
		if err != nil {
			t.Fatal(err)
		}
		if cc.DefaultPrincipal.Realm != realm || cc.DefaultPrincipal.PrincipalName.PrincipalNameString() != "alice" || len(cc.Credentials) != 4 {
			t.Fatalf("CCache: %+v", cc.DefaultPrincipal)
		}
		cred, ok := cc.GetEntry(types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", realm}})
		if !ok || string(cred.Ticket) != "tgt-ticket" || !cred.EndTime.Equal(now.Add(time.Hour)) || len(cred.Key.KeyValue) != 32 {
			t.Fatalf("TGT: %v %+v", ok, cred)
		}
		if img := c.fileImage(c.isTGT); !bytes.Equal(img, append(append([]byte{5, 4, 0, 0}, alice...), tgt...)) {
			t.Fatalf("spool image holds more than the TGT: %d bytes", len(img))
		}
		t.Logf("list=%v: requests %v", list, f.ops())
	}

	// locateCCache: KCM:name through kcm_socket of krb5.conf, to a spool
	// file of mode 0600 in a private directory, rewritten only when the
	// cache changed.
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	f := startFakeKCM(t, &fakeKCM{name: "1000:x", princ: alice, creds: [][]byte{tgt}, list: true})
	confPath := filepath.Join(t.TempDir(), "krb5.conf")
	os.WriteFile(confPath, []byte("[libdefaults]\n\tdefault_realm = "+realm+"\n\tkcm_socket = "+f.socket+"\n"), 0o644)
	l := locateCCache("KCM:1000:x", confPath)
	if l.err != nil || l.from != "Kerberos.CCache" {
		t.Fatalf("locate: %+v", l)
	}
	fi, err := os.Stat(l.path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("spool %s: %v %v", l.path, fi, err)
	}
	if di, err := os.Stat(filepath.Dir(l.path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("spool dir: %v %v", di, err)
	}
	spool := l.path
	stamp, _ := stampOf(spool)
	if l2 := locateCCache("KCM:1000:x", confPath); l2.path != l.path {
		t.Fatalf("second locate: %+v", l2)
	}
	if s2, _ := stampOf(l.path); s2 != stamp {
		t.Fatalf("unchanged cache rewrote the spool file")
	}

	// A spool directory that is not private is refused.
	rt := t.TempDir()
	os.Mkdir(filepath.Join(rt, "anyauth-kcm"), 0o755)
	os.Chmod(filepath.Join(rt, "anyauth-kcm"), 0o755)
	t.Setenv("XDG_RUNTIME_DIR", rt)
	if l := locateCCache("KCM:1000:x", confPath); l.err == nil || !strings.Contains(l.err.Error(), "mode 0700") {
		t.Fatalf("spool dir of mode 0755: %+v", l)
	}
	t.Setenv("XDG_RUNTIME_DIR", filepath.Dir(filepath.Dir(spool)))

	// An empty cache (no such name; Heimdal's code 0 and no principal)
	// is an error saying to run kinit, and removes the spool file.
	f.setPrinc(nil)
	l = locateCCache("KCM:1000:x", confPath)
	if l.err == nil || !strings.Contains(l.err.Error(), "run kinit") {
		t.Fatalf("empty cache: %+v", l)
	}
	if _, err := os.Stat(spool); err == nil {
		t.Fatalf("the spool file %s of an emptied cache is still there", spool)
	}
	if _, err := readKCM(f.socket, "1000:nosuch"); !errors.Is(err, errKCMNoCache) {
		t.Fatalf("no such cache: %v", err)
	}
	t.Logf("empty: %v", l.err)

	// No daemon.
	l = locateCCache("KCM:", filepath.Join(t.TempDir(), "none.conf"))
	if l.err == nil || !strings.Contains(l.err.Error(), kcmDefaultSocket) {
		t.Logf("default socket: %+v", l) // a machine may run sssd-kcm
	}
	os.WriteFile(confPath, []byte("[libdefaults]\n\tkcm_socket = "+filepath.Join(t.TempDir(), "gone")+"\n"), 0o644)
	if l = locateCCache("KCM:", confPath); l.err == nil || !strings.Contains(l.err.Error(), "no KCM daemon listens") {
		t.Fatalf("no daemon: %+v", l)
	}
	t.Logf("no daemon: %v", l.err)

	// A truncated credential is an error, not a panic in gokrb5.
	f = startFakeKCM(t, &fakeKCM{name: "0", princ: alice, creds: [][]byte{tgt}, badCred: true})
	if _, err := readKCM(f.socket, ""); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("truncated credential: %v", err)
	}
}

func TestKCMLibdefault(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "conf.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "conf.d", "kcm_default_ccache"), []byte("[libdefaults]\n    default_ccache_name = KCM:\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "conf.d", "ignored.rpmnew"), []byte("[libdefaults]\n kcm_socket = /wrong\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sock.conf"), []byte("[libdefaults]\n kcm_socket = /run/kcm.sock\n"), 0o644)
	main := filepath.Join(dir, "krb5.conf")
	os.WriteFile(main, []byte("includedir "+filepath.Join(dir, "conf.d")+"/\ninclude "+filepath.Join(dir, "sock.conf")+"\n[realms]\n"), 0o644)
	if got := libdefault(main, "default_ccache_name", 0); got != "KCM:" {
		t.Errorf("default_ccache_name via includedir: %q", got)
	}
	if got := kcmSocket(main); got != "/run/kcm.sock" {
		t.Errorf("kcm_socket via include: %q", got)
	}
	if got := kcmSocket(filepath.Join(dir, "none")); got != kcmDefaultSocket {
		t.Errorf("default socket: %q", got)
	}
}

// FuzzKCMCredList: no reply makes the parsers or gokrb5 panic.
func FuzzKCMCredList(f *testing.F) {
	alice := kcmPrinc(1, "R", "alice")
	tgt := kcmCred(alice, kcmPrinc(2, "R", "krbtgt", "R"), []byte("k"), time.Unix(1, 0), time.Unix(2, 0), []byte("t"))
	f.Add(alice, append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), uint32(len(tgt))), tgt...))
	f.Add(alice, []byte{0, 0, 0, 2, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, princ, list []byte) {
		creds, err := parseKCMCredList(list)
		if n, ok := skipPrincipal(princ); err != nil || !ok || n != len(princ) {
			return
		}
		c := &kcmCache{princ: princ, creds: creds}
		for _, cr := range creds {
			c.isTGT(cr)
		}
		if _, err := c.CCache(); err != nil {
			t.Fatalf("valid serialization refused by gokrb5: %v", err)
		}
	})
}

// TestKCM: kinit (MIT) stores a ticket in a real KCM daemon (Heimdal's
// kcm); the reader gets the principal and the TGT back; the Kerberos
// scheme uses it against the GSSAPI Apache, by Kerberos.CCache,
// KRB5CCNAME and default_ccache_name; an empty cache, a destroyed one and
// an expired ticket step aside.
func TestKCM(t *testing.T) {
	kdc := testserver.StartKDCForTest(t)
	kcm := testserver.StartKCMForTest(t)
	srv := testserver.StartForTest(t, func() (*testserver.Server, error) { return testserver.StartGSSAPIApache(kdc) })
	conf, err := kcm.Config(kdc)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	url := srv.URL + testserver.PathNegotiate + testserver.WhoamiPath
	attempt := &anyauth.Attempt{Space: anyauth.ProtectionSpace{URLScheme: "http", Host: "localhost", Port: "80"}}
	get := func(t *testing.T, k *Kerberos) (int, string) {
		t.Helper()
		k.Mutual = MutualRequired
		tr := &anyauth.Transport{Base: &http.Transport{Proxy: nil}, Schemes: []anyauth.Scheme{k}}
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	stepsAside := func(t *testing.T, k *Kerberos, want error) {
		t.Helper()
		if code, _ := get(t, k); code != http.StatusUnauthorized {
			t.Fatalf("got %d, want the server's 401", code)
		}
		_, err := k.Begin(context.Background(), nil, attempt)
		if !errors.Is(err, want) || !errors.Is(err, anyauth.ErrNoCredentials) || !strings.Contains(err.Error(), "run kinit") {
			t.Fatalf("Begin: %v; want %v wrapped with ErrNoCredentials, saying to run kinit", err, want)
		}
		t.Logf("steps aside: %v", err)
	}

	// Empty: nothing kinit'ed yet.
	if kcm.External {
		if err := kcm.KdestroyAll(kdc); err != nil {
			t.Fatal(err)
		}
	}
	stepsAside(t, &Kerberos{Config: conf, CCache: "KCM:"}, ErrNoTicket)

	if err := kcm.Kinit(kdc, "KCM:"); err != nil {
		t.Fatal(err)
	}
	uid := strconv.Itoa(os.Getuid())
	c, err := readKCM(kcm.Socket, "")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.CCache()
	if err != nil {
		t.Fatal(err)
	}
	if (c.name != uid && !strings.HasPrefix(c.name, uid+":")) || cc.DefaultPrincipal.PrincipalName.PrincipalNameString()+"@"+cc.DefaultPrincipal.Realm != kdc.Principal {
		t.Fatalf("KCM cache %q, principal %+v", c.name, cc.DefaultPrincipal)
	}
	tgt, ok := cc.GetEntry(types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", kdc.Realm}})
	if !ok || len(tgt.Ticket) == 0 || !tgt.EndTime.After(time.Now()) {
		t.Fatalf("no valid TGT in KCM: %v %+v", ok, tgt)
	}
	t.Logf("KCM:%s holds %d credentials (GET_CRED_LIST: %v); TGT until %s", c.name, len(c.creds), c.list, tgt.EndTime)

	for _, tc := range []struct {
		name string
		k    *Kerberos
		env  map[string]string
	}{
		{"CCache KCM:", &Kerberos{Config: conf, CCache: "KCM:"}, nil},
		{"CCache KCM:uid", &Kerberos{Config: conf, CCache: "KCM:" + uid}, nil},
		{"KRB5CCNAME", &Kerberos{}, map[string]string{"KRB5CCNAME": "KCM:", "KRB5_CONFIG": conf}},
		{"default_ccache_name", &Kerberos{Config: conf}, map[string]string{"KRB5CCNAME": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if code, user := get(t, tc.k); code != http.StatusOK || user != kdc.Principal {
				t.Fatalf("got %d %q, want 200 %s", code, user, kdc.Principal)
			}
		})
	}

	// What locating the cache costs each request that needs a ticket.
	began := time.Now()
	for i := 0; i < 20; i++ {
		if l := locateCCache("KCM:", conf); l.err != nil {
			t.Fatal(l.err)
		}
	}
	t.Logf("locateCCache(KCM:) takes %v", time.Since(began)/20)

	// KCM:uid:name, a cache of the collection other than the primary.
	t.Run("KCM:uid:name", func(t *testing.T) {
		k := &Kerberos{Config: conf, CCache: "KCM:" + uid + ":second"}
		stepsAside(t, k, ErrNoTicket)
		if err := kcm.Kinit(kdc, "KCM:"+uid+":second"); err != nil {
			t.Fatal(err)
		}
		if code, user := get(t, k); code != http.StatusOK || user != kdc.Principal {
			t.Fatalf("got %d %q", code, user)
		}
		// kdestroy: the same Kerberos steps aside again.
		if err := kcm.Kdestroy(kdc, "KCM:"+uid+":second"); err != nil {
			t.Fatal(err)
		}
		stepsAside(t, k, ErrNoTicket)
	})

	// An expired ticket: kinit -l 2s, then wait.
	t.Run("expired", func(t *testing.T) {
		k := &Kerberos{Config: conf, CCache: "KCM:" + uid + ":short"}
		if err := kcm.Kinit(kdc, "KCM:"+uid+":short", "-l", "2s"); err != nil {
			t.Fatal(err)
		}
		if code, _ := get(t, k); code != http.StatusOK {
			t.Fatalf("fresh short ticket: %d", code)
		}
		time.Sleep(2500 * time.Millisecond)
		stepsAside(t, k, ErrTicketExpired)
	})
}
