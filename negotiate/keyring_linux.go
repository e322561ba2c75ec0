//go:build linux

package negotiate

// KEYRING credential caches (KRB5CCNAME=KEYRING:..., the default of some
// distributions before KCM): MIT libkrb5 keeps the tickets in the Linux
// kernel's key retention service, in the layout of MIT's
// src/lib/krb5/ccache/cc_keyring.c:
//
//   - The name is KEYRING:anchor:collection[:subsidiary], or the legacy
//     KEYRING:name (anchor "legacy", collection name). The anchor is
//     session, user, persistent, process or thread.
//   - The collection is a keyring "_krb_<collection>" in the anchor keyring
//     (the session keyring for session and legacy, the user keyring for
//     user), or for persistent a keyring "_krb" in the persistent keyring
//     of the uid the collection names (keyctl_get_persistent; "" is the
//     caller's euid).
//   - The collection holds a "user" key "krb_ccache:primary": a 4-byte
//     big-endian version (1), a 4-byte big-endian length and the name of
//     the primary cache keyring. Without it, the primary cache is named
//     after the collection ("tkt" for an empty one).
//   - A cache keyring holds a "user" key "__krb5_princ__", the default
//     principal in the serialization of version 4 FILE: ccaches, maybe
//     "__krb5_time_offsets__", and one key per credential ("big_key", or
//     "user" in legacy caches and on kernels without big_key) holding the
//     credential in the same serialization.
//
// The cache is read with the keyctl(2) system call (no libkeyutils) and,
// as for KCM (kcm.go), its principal and ticket-granting ticket are put
// together into the bytes of a version 4 FILE: ccache kept in a private
// spool file, which the ccache source reads. Reading never creates or
// links anything, except that looking up a persistent keyring links it
// into the process keyring (as libkrb5 does): that is what gives the
// caller possession of it, and so the right to read it.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// keyctl(2) operations (linux/keyctl.h).
const (
	keyctlGetKeyringID  = 0
	keyctlDescribe      = 6
	keyctlSearch        = 10
	keyctlRead          = 11
	keyctlGetPersistent = 22
)

// Special keyring IDs (linux/keyctl.h).
const (
	keySpecThreadKeyring  = -1
	keySpecProcessKeyring = -2
	keySpecSessionKeyring = -3
	keySpecUserKeyring    = -4
)

// The names of cc_keyring.c.
const (
	krccCollectionPrefix  = "_krb_"
	krccPersistentName    = "_krb"
	krccPrimaryKey        = "krb_ccache:primary"
	krccPrincipalKey      = "__krb5_princ__"
	krccTimeOffsetsKey    = "__krb5_time_offsets__"
	krccCollectionVersion = 1
	krccMaxKey            = 1 << 20 // cc_keyring.c's MAX_CRED_SIZE
)

// errKeyringNoCache means the keyring holds no such cache, or one
// without a principal.
var errKeyringNoCache = errors.New("no such cache")

func keyctl(op int, a2, a3, a4, a5 uintptr) (int, error) {
	r, _, errno := syscall.Syscall6(syscall.SYS_KEYCTL, uintptr(op), a2, a3, a4, a5, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(int32(r)), nil
}

// keyArg passes a key serial (negative for the special keyrings) to
// keyctl.
func keyArg(id int) uintptr { return uintptr(id) }

// keySearch is keyctl_search(ring, typ, desc, 0): a key of the type and
// description in ring or the keyrings it holds (recursively).
func keySearch(ring int32, typ, desc string) (int32, error) {
	t, err := syscall.BytePtrFromString(typ)
	if err != nil {
		return 0, err
	}
	d, err := syscall.BytePtrFromString(desc)
	if err != nil {
		return 0, err
	}
	id, err := keyctl(keyctlSearch, uintptr(ring), uintptr(unsafe.Pointer(t)), uintptr(unsafe.Pointer(d)), 0)
	return int32(id), err
}

// keyRead returns the payload of a key (for a keyring: its keys' IDs).
func keyRead(id int32) ([]byte, error) {
	buf := make([]byte, 512)
	for {
		n, err := keyctl(keyctlRead, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
		if err != nil {
			return nil, err
		}
		if n <= len(buf) {
			return buf[:n], nil
		}
		if n > krccMaxKey {
			return nil, fmt.Errorf("key %d holds %d bytes", id, n)
		}
		buf = make([]byte, n)
	}
}

// keyDescribe returns the type and description of a key.
func keyDescribe(id int32) (typ, desc string, err error) {
	buf := make([]byte, 256)
	for {
		n, err := keyctl(keyctlDescribe, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
		if err != nil {
			return "", "", err
		}
		if n <= len(buf) {
			// "type;uid;gid;perm;description" and a NUL.
			f := strings.SplitN(strings.TrimRight(string(buf[:n]), "\x00"), ";", 5)
			if len(f) != 5 {
				return "", "", fmt.Errorf("key %d: malformed description", id)
			}
			return f[0], f[4], nil
		}
		if n > 64<<10 {
			return "", "", fmt.Errorf("key %d: description of %d bytes", id, n)
		}
		buf = make([]byte, n)
	}
}

// keyringName is a parsed KEYRING: residual (cc_keyring.c's
// parse_residual).
type keyringName struct {
	anchor, collection, subsidiary string // subsidiary "": the primary cache
}

func parseKeyringName(residual string) keyringName {
	var n keyringName
	anchor, rest, ok := strings.Cut(residual, ":")
	if !ok {
		anchor, rest = "legacy", residual
	}
	n.anchor = anchor
	n.collection, n.subsidiary, _ = strings.Cut(rest, ":")
	return n
}

// keyringCollection finds the collection keyring of n. anchorID is the
// anchor's serial (the persistent keyring for persistent), for naming the
// spool file; it is set when the anchor was found, even when the
// collection was not.
func keyringCollection(n keyringName) (collection, anchorID int32, err error) {
	var spec int
	switch n.anchor {
	case "persistent":
		uid := os.Geteuid()
		if n.collection != "" {
			u, err := strconv.ParseUint(n.collection, 10, 31)
			if err != nil {
				return 0, 0, fmt.Errorf("persistent keyring of %q: not a uid", n.collection)
			}
			uid = int(u)
		}
		// Links the persistent keyring into the process keyring (made
		// if needed), as libkrb5 does: possession of it.
		p, err := keyctl(keyctlGetPersistent, uintptr(uint32(uid)), keyArg(keySpecProcessKeyring), 0, 0)
		if errors.Is(err, syscall.EOPNOTSUPP) && uid == os.Geteuid() {
			p, err = keyctl(keyctlGetKeyringID, keyArg(keySpecUserKeyring), 0, 0, 0) // cc_keyring.c's fallback
		}
		if err != nil {
			return 0, 0, fmt.Errorf("persistent keyring of uid %d: %w", uid, err)
		}
		c, err := keySearch(int32(p), "keyring", krccPersistentName)
		return c, int32(p), err
	case "session", "legacy":
		spec = keySpecSessionKeyring // a process without one gets the user session keyring
	case "user":
		spec = keySpecUserKeyring
	case "process":
		spec = keySpecProcessKeyring
	case "thread":
		// Goroutines move between threads: a thread keyring is no
		// place a Go program can find again.
		return 0, 0, errors.New("thread keyrings cannot be read from Go (goroutines are not threads)")
	default:
		return 0, 0, fmt.Errorf("unknown keyring anchor %q (want session, user, persistent, process or thread)", n.anchor)
	}
	a, err := keyctl(keyctlGetKeyringID, keyArg(spec), 0, 0, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("%s keyring: %w", n.anchor, err)
	}
	c, err := keySearch(int32(a), "keyring", krccCollectionPrefix+n.collection)
	return c, int32(a), err
}

// keyringPrimary returns the name of the primary cache of the collection
// (cc_keyring.c's get_primary_name, without creating the key).
func keyringPrimary(n keyringName, collection int32) (string, error) {
	id, err := keySearch(collection, "user", krccPrimaryKey)
	if errors.Is(err, syscall.ENOKEY) {
		if n.collection == "" {
			return "tkt", nil
		}
		return n.collection, nil
	}
	if err != nil {
		return "", err
	}
	b, err := keyRead(id)
	if err != nil {
		return "", fmt.Errorf("%s: %w", krccPrimaryKey, err)
	}
	if len(b) < 8 {
		return "", fmt.Errorf("%s: malformed", krccPrimaryKey)
	}
	if v := binary.BigEndian.Uint32(b); v != krccCollectionVersion {
		return "", fmt.Errorf("%s: unknown version %d", krccPrimaryKey, v)
	}
	l := binary.BigEndian.Uint32(b[4:])
	if uint64(l) != uint64(len(b)-8) || l == 0 {
		return "", fmt.Errorf("%s: malformed", krccPrimaryKey)
	}
	return string(b[8:]), nil
}

// keyringCache is one cache read from the kernel keyring.
type keyringCache struct {
	kcmCache       // name: the cache keyring's name; princ, creds
	id       int32 // the cache keyring's serial
}

// readKeyring reads the cache of the KEYRING: residual. anchorID is as
// for keyringCollection. An absent collection, cache or principal is
// errKeyringNoCache.
func readKeyring(residual string) (c *keyringCache, anchorID int32, err error) {
	n := parseKeyringName(residual)
	c = &keyringCache{kcmCache: kcmCache{name: n.subsidiary}}
	collection, anchorID, err := keyringCollection(n)
	if errors.Is(err, syscall.ENOKEY) {
		return c, anchorID, errKeyringNoCache
	}
	if err != nil {
		return c, anchorID, err
	}
	if c.name == "" {
		if c.name, err = keyringPrimary(n, collection); err != nil {
			return c, anchorID, err
		}
	}
	c.id, err = keySearch(collection, "keyring", c.name)
	if errors.Is(err, syscall.ENOKEY) {
		return c, anchorID, errKeyringNoCache
	}
	if err != nil {
		return c, anchorID, fmt.Errorf("cache keyring %q: %w", c.name, err)
	}
	list, err := keyRead(c.id)
	if err != nil {
		return c, anchorID, fmt.Errorf("cache keyring %q: %w", c.name, err)
	}
	for i := 0; i+4 <= len(list); i += 4 {
		id := int32(binary.NativeEndian.Uint32(list[i:]))
		typ, desc, err := keyDescribe(id)
		if err != nil {
			continue // gone since the list was read, or not ours to see
		}
		if (typ != "user" && typ != "big_key") || desc == krccTimeOffsetsKey {
			continue
		}
		b, err := keyRead(id)
		if err != nil {
			if errors.Is(err, syscall.ENOKEY) || errors.Is(err, syscall.EKEYEXPIRED) || errors.Is(err, syscall.EKEYREVOKED) {
				continue
			}
			return c, anchorID, fmt.Errorf("key %q: %w", desc, err)
		}
		if desc == krccPrincipalKey {
			if m, ok := skipPrincipal(b); !ok || m != len(b) {
				return c, anchorID, errors.New("malformed principal")
			}
			c.princ = b
			continue
		}
		if m, ok := skipCredential(b); !ok || m != len(b) {
			return c, anchorID, fmt.Errorf("malformed credential %q", desc)
		}
		c.creds = append(c.creds, b)
	}
	if c.princ == nil {
		return c, anchorID, errKeyringNoCache // kdestroy'd (cleared) or never initialized
	}
	return c, anchorID, nil
}

// locateKeyring resolves the KEYRING: ccache name for the ccache source,
// as locateKCM does for KCM: it reads the cache and returns the location
// of a private spool file holding its principal and ticket-granting
// ticket, rewritten when the cache changed. A cache that cannot be read
// is a location with err set, and its spool file is removed.
//
// The spool file is named after the residual and the anchor keyring's
// serial (two sessions' KEYRING:session:x are different caches), next to
// the KCM spool files (kcmSpoolPath).
func locateKeyring(name, residual, from string) ccacheLocation {
	l := ccacheLocation{name: name, from: from}
	cache, anchorID, err := readKeyring(residual)
	spool := ""
	if anchorID != 0 {
		spool = kcmSpoolPath("KEYRING", residual+"\x00"+strconv.Itoa(int(anchorID)))
	}
	fail := func(err error) ccacheLocation {
		if spool != "" {
			_ = os.Remove(spool) // no stale copy of a cache that is gone
		}
		l.err = err
		return l
	}
	switch {
	case errors.Is(err, errKeyringNoCache):
		if parseKeyringName(residual).subsidiary == "" && cache.name != "" {
			name += " (primary cache " + strconv.Quote(cache.name) + ")"
		}
		return fail(fmt.Errorf("the kernel keyring holds no credential cache %s; run kinit", name))
	case errors.Is(err, syscall.ENOSYS):
		return fail(fmt.Errorf("credential cache %s: the kernel has no keyrings (keyctl: %w)", name, err))
	case err != nil:
		return fail(fmt.Errorf("credential cache %s: %w", name, err))
	}
	img := cache.fileImage(cache.isTGT)
	if old, err := os.ReadFile(spool); err != nil || !bytes.Equal(old, img) {
		if err := privateDir(filepath.Dir(spool)); err != nil {
			return fail(fmt.Errorf("credential cache %s: %w", name, err))
		}
		if err := writePrivate(spool, img); err != nil {
			return fail(fmt.Errorf("credential cache %s: %w", name, err))
		}
	}
	l.path = spool
	return l
}
