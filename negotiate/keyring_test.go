//go:build linux

package negotiate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/types"
)

func TestKeyringName(t *testing.T) {
	for residual, want := range map[string]keyringName{
		"x":                    {"legacy", "x", ""},
		"session:x":            {"session", "x", ""},
		"session:x:y":          {"session", "x", "y"},
		"persistent:0":         {"persistent", "0", ""},
		"persistent:":          {"persistent", "", ""},
		"persistent:1000:krb1": {"persistent", "1000", "krb1"},
		"user:a:b:c":           {"user", "a", "b:c"},
	} {
		if got := parseKeyringName(residual); got != want {
			t.Errorf("parseKeyringName(%q) = %+v, want %+v", residual, got, want)
		}
	}
	for _, name := range []string{"KEYRING:thread:x", "KEYRING:bogus:x", "KEYRING:persistent:nobody"} {
		if l := locateCCache(name, ""); l.err == nil || l.path != "" {
			t.Errorf("%s: %+v, want an error", name, l)
		} else {
			t.Logf("%s: %v", name, l.err)
		}
	}
}

// keyringUsable skips the test (fails it in CI) when this process cannot
// use the kernel keyring, naming the errno.
func keyringUsable(t *testing.T) {
	t.Helper()
	if _, err := keyctl(keyctlGetKeyringID, keyArg(keySpecSessionKeyring), 0, 0, 0); err != nil {
		var errno syscall.Errno
		errors.As(err, &errno)
		if testserver.InCI() {
			t.Fatalf("keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING): %v (errno %d)", err, int(errno))
		}
		t.Skipf("the kernel keyring cannot be used here: keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING): %v (errno %d)", err, int(errno))
	}
}

// TestKeyring: kinit into KEYRING: caches of the persistent, session and
// legacy kinds; each read (principal and TGT) and used against the
// Kerberos Apache, then kdestroy'd.
func TestKeyring(t *testing.T) {
	keyringUsable(t)
	kdc := testserver.StartKDCForTest(t)
	srv := testserver.StartForTest(t, func() (*testserver.Server, error) { return testserver.StartGSSAPIApache(kdc) })
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	kdestroy, err := exec.LookPath("kdestroy")
	if v := os.Getenv("TESTSERVER_KINIT"); v != "" {
		kdestroy, err = filepath.Join(filepath.Dir(v), "kdestroy"), nil
	}
	if err != nil {
		t.Fatal(err)
	}
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
	stepsAside := func(t *testing.T, k *Kerberos) {
		t.Helper()
		if code, _ := get(t, k); code != http.StatusUnauthorized {
			t.Fatalf("got %d, want the server's 401", code)
		}
		_, err := k.Begin(context.Background(), nil, attempt)
		if !errors.Is(err, ErrNoTicket) || !errors.Is(err, anyauth.ErrNoCredentials) || !strings.Contains(err.Error(), "run kinit") {
			t.Fatalf("Begin: %v; want ErrNoTicket wrapped with ErrNoCredentials, saying to run kinit", err)
		}
		t.Logf("steps aside: %v", err)
	}
	runKdestroy := func(name string) error {
		cmd := exec.Command(kdestroy, "-c", name)
		cmd.Env = append(os.Environ(), kdc.Env()...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return errors.New("kdestroy -c " + name + ": " + err.Error() + ": " + string(out))
		}
		return nil
	}
	// removeCollection unlinks the collection keyring a test made from
	// the session anchor (kdestroy leaves the collection and its
	// primary key behind).
	removeCollection := func(t *testing.T, collection string) {
		for _, anchor := range []int{keySpecSessionKeyring, -5 /* KEY_SPEC_USER_SESSION_KEYRING */} {
			a, err := keyctl(keyctlGetKeyringID, keyArg(anchor), 0, 0, 0)
			if err != nil {
				continue
			}
			c, err := keySearch(int32(a), "keyring", krccCollectionPrefix+collection)
			if err != nil {
				continue
			}
			if _, err := keyctl(9 /* KEYCTL_UNLINK */, uintptr(c), uintptr(a), 0, 0); err != nil {
				t.Logf("unlinking keyring %s%s: %v", krccCollectionPrefix, collection, err)
			}
		}
	}
	random := func() string {
		b := make([]byte, 4)
		rand.Read(b)
		return "anyauth-test-" + hex.EncodeToString(b)
	}

	uid := strconv.Itoa(os.Geteuid())
	persistent := "KEYRING:persistent:" + uid
	if _, _, err := readKeyring("persistent:" + uid); !errors.Is(err, errKeyringNoCache) {
		// Someone's tickets in the primary cache: leave them alone.
		t.Logf("%s already holds a cache (%v); using a cache of its own in that collection", persistent, err)
		persistent += ":" + random()
	}
	session, legacy := random(), random()
	for _, tc := range []struct {
		kind, name, residual, collection string
	}{
		{"persistent", persistent, strings.TrimPrefix(persistent, "KEYRING:"), ""},
		{"session", "KEYRING:session:" + session, "session:" + session, session},
		{"legacy", "KEYRING:" + legacy, legacy, legacy},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			if tc.collection != "" {
				t.Cleanup(func() { removeCollection(t, tc.collection) })
			}
			k := &Kerberos{Config: kdc.Config, CCache: tc.name}
			stepsAside(t, k)

			if err := kdc.Kinit(tc.name); err != nil {
				t.Fatal(err)
			}
			destroyed := false
			t.Cleanup(func() {
				if !destroyed {
					if err := runKdestroy(tc.name); err != nil {
						t.Error(err)
					}
				}
			})
			c, _, err := readKeyring(tc.residual)
			if err != nil {
				t.Fatalf("reading %s: %v", tc.name, err)
			}
			cc, err := c.CCache()
			if err != nil {
				t.Fatal(err)
			}
			if p := cc.DefaultPrincipal.PrincipalName.PrincipalNameString() + "@" + cc.DefaultPrincipal.Realm; p != kdc.Principal {
				t.Fatalf("%s: principal %s, want %s", tc.name, p, kdc.Principal)
			}
			tgt, ok := cc.GetEntry(types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", kdc.Realm}})
			if !ok || len(tgt.Ticket) == 0 || !tgt.EndTime.After(time.Now()) {
				t.Fatalf("no valid TGT in %s: %v %+v", tc.name, ok, tgt)
			}
			t.Logf("%s: cache keyring %q (serial %d) holds %d credentials; TGT until %s", tc.name, c.name, c.id, len(c.creds), tgt.EndTime)

			l := locateCCache(tc.name, kdc.Config)
			if l.err != nil || l.path == "" {
				t.Fatalf("locateCCache(%s): %+v", tc.name, l)
			}
			if fi, err := os.Stat(l.path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("spool file %s: %v %v", l.path, fi, err)
			}

			if code, user := get(t, k); code != http.StatusOK || user != kdc.Principal {
				t.Fatalf("got %d %q, want 200 %s", code, user, kdc.Principal)
			}
			t.Run("KRB5CCNAME", func(t *testing.T) {
				t.Setenv("KRB5CCNAME", tc.name)
				if code, user := get(t, &Kerberos{Config: kdc.Config}); code != http.StatusOK || user != kdc.Principal {
					t.Fatalf("got %d %q, want 200 %s", code, user, kdc.Principal)
				}
			})

			// kdestroy: the same Kerberos steps aside, the spool file is gone.
			if err := runKdestroy(tc.name); err != nil {
				t.Fatal(err)
			}
			destroyed = true
			stepsAside(t, k)
			if _, err := os.Stat(l.path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("spool file %s after kdestroy: %v", l.path, err)
			}
		})
	}
}
