package negotiate

// KCM credential caches (KRB5CCNAME=KCM:, the default of Fedora, RHEL and
// sssd desktops): the tickets are kept by a daemon (sssd_kcm, Heimdal's
// kcm) that libkrb5 asks over a unix socket, in Heimdal's KCM protocol as
// MIT's src/lib/krb5/ccache/cc_kcm.c speaks it:
//
//   - The socket is [libdefaults] kcm_socket of krb5.conf, else
//     /var/run/.heim_org.h5l.kcm-socket; "-" turns KCM off.
//   - A request is a 4-byte big-endian length, then the protocol version
//     2.0 (bytes 2, 0), a 16-bit big-endian opcode and the arguments: a
//     cache name is a NUL-terminated string, a UUID 16 bytes.
//   - A reply is a 4-byte big-endian length N, a 4-byte transport status
//     (non-zero: the daemon failed the call), then N bytes: a 4-byte
//     krb5 error code (0 for success) and the payload.
//   - Principals and credentials come in the serialization of version 4
//     FILE: ccaches; lists of UUIDs are not delimited.
//
// Reading a cache takes GET_DEFAULT_CACHE (for "KCM:", the caller's
// primary cache), GET_PRINCIPAL, then GET_CRED_LIST (MIT extension 13001:
// a count and length-prefixed credentials, one round trip; sssd answers
// it) or, where the daemon does not know it (Heimdal: KRB5_FCC_INTERNAL;
// older sssd: KRB5_CC_IO or KRB5_CC_NOSUPP), GET_CRED_UUID_LIST and one
// GET_CRED_BY_UUID per credential. The daemon decides by the socket peer's
// uid which caches the caller may read.
//
// gokrb5 reads FILE: ccaches only, from a path; the principal and the
// credentials are put together into the bytes of a version 4 FILE:
// ccache (header 0x0504, an empty header-field list, the principal, the
// credentials) and parsed with gokrb5's CCache.Unmarshal. The ccache
// source (source.go) reads a file whose change it notices by its size
// and time, so locateKCM keeps a copy of the cache's ticket-granting
// ticket in a private spool file (see kcmSpool) and rewrites it only
// when the daemon's answer changed.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jcmturner/gokrb5/v8/credentials"
)

// kcmDefaultSocket is MIT's and Heimdal's default KCM socket.
const kcmDefaultSocket = "/var/run/.heim_org.h5l.kcm-socket"

// KCM opcodes (MIT include/kcm.h; Heimdal kcm/kcm.h).
const (
	kcmOpGetPrincipal    = 8
	kcmOpGetCredUUIDList = 9
	kcmOpGetCredByUUID   = 10
	kcmOpGetDefaultCache = 20
	kcmOpGetCredList     = 13001 // MIT extension (sssd 2.5+)
)

// krb5 error codes a KCM daemon answers with (MIT krb5_err.et, the same
// numbers in Heimdal).
const (
	kcmCCBadName   int32 = -1765328245 // KRB5_CC_BADNAME
	kcmCCNotFound  int32 = -1765328243 // KRB5_CC_NOTFOUND
	kcmCCEnd       int32 = -1765328242 // KRB5_CC_END
	kcmCCIO        int32 = -1765328191 // KRB5_CC_IO
	kcmFCCPerm     int32 = -1765328190 // KRB5_FCC_PERM
	kcmFCCNoFile   int32 = -1765328189 // KRB5_FCC_NOFILE
	kcmFCCInternal int32 = -1765328188 // KRB5_FCC_INTERNAL
	kcmCCNoSupp    int32 = -1765328137 // KRB5_CC_NOSUPP
)

const (
	kcmMaxReply = 10 << 20 // MIT's MAX_REPLY_SIZE
	kcmTimeout  = 5 * time.Second
	kcmUUIDLen  = 16
)

// errKCMNoCache means the KCM daemon has no such cache, or one without
// a principal (kdestroy'd, never kinit'ed).
var errKCMNoCache = errors.New("no such cache")

// A kcmError is a krb5 error code the daemon answered with.
type kcmError struct {
	op   uint16
	code int32
}

func (e *kcmError) Error() string {
	name := map[int32]string{
		kcmCCBadName: "KRB5_CC_BADNAME", kcmCCNotFound: "KRB5_CC_NOTFOUND", kcmCCEnd: "KRB5_CC_END",
		kcmCCIO: "KRB5_CC_IO", kcmFCCPerm: "KRB5_FCC_PERM", kcmFCCNoFile: "KRB5_FCC_NOFILE",
		kcmFCCInternal: "KRB5_FCC_INTERNAL", kcmCCNoSupp: "KRB5_CC_NOSUPP",
	}[e.code]
	if name == "" {
		name = "error " + strconv.Itoa(int(e.code))
	}
	return fmt.Sprintf("KCM operation %d: %s", e.op, name)
}

// kcmUnsupported reports whether err says that the daemon does not know
// the operation (cc_kcm.c's unsupported_op_error).
func kcmUnsupported(err error) bool {
	var ke *kcmError
	return errors.As(err, &ke) && (ke.code == kcmFCCInternal || ke.code == kcmCCIO || ke.code == kcmCCNoSupp)
}

// kcmConn is a connection to a KCM daemon.
type kcmConn struct {
	c net.Conn
}

func dialKCM(socket string) (*kcmConn, error) {
	c, err := net.DialTimeout("unix", socket, kcmTimeout)
	if err != nil {
		return nil, err
	}
	return &kcmConn{c: c}, nil
}

func (k *kcmConn) Close() error { return k.c.Close() }

// call sends one request and returns the reply's payload; a non-zero
// code is a *kcmError.
func (k *kcmConn) call(op uint16, args ...[]byte) ([]byte, error) {
	n := 4
	for _, a := range args {
		n += len(a)
	}
	req := make([]byte, 8, 4+n)
	binary.BigEndian.PutUint32(req, uint32(n))
	req[4], req[5] = 2, 0 // KCM_PROTOCOL_VERSION_MAJOR, _MINOR
	binary.BigEndian.PutUint16(req[6:], op)
	for _, a := range args {
		req = append(req, a...)
	}
	_ = k.c.SetDeadline(time.Now().Add(kcmTimeout))
	if _, err := k.c.Write(req); err != nil {
		return nil, err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(k.c, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading the reply to KCM operation %d: %w", op, err)
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if status := int32(binary.BigEndian.Uint32(hdr[4:])); status != 0 {
		return nil, &kcmError{op: op, code: status}
	}
	if size > kcmMaxReply {
		return nil, fmt.Errorf("KCM operation %d: reply of %d bytes is too big", op, size)
	}
	if size < 4 {
		return nil, fmt.Errorf("KCM operation %d: malformed reply (%d bytes)", op, size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(k.c, body); err != nil {
		return nil, fmt.Errorf("reading the reply to KCM operation %d: %w", op, err)
	}
	if code := int32(binary.BigEndian.Uint32(body)); code != 0 {
		return nil, &kcmError{op: op, code: code}
	}
	return body[4:], nil
}

func cString(s string) []byte { return append([]byte(s), 0) }

// kcmCache is one KCM cache as the daemon returned it.
type kcmCache struct {
	name  string   // the daemon's name of the cache (e.g. "1000")
	princ []byte   // the default principal, ccache v4 serialization
	creds [][]byte // the credentials, ccache v4 serialization each
	list  bool     // the daemon answered GET_CRED_LIST (else: by UUID)
}

// readKCM reads the cache name ("" for the caller's primary cache) from
// the daemon at socket.
func readKCM(socket, name string) (*kcmCache, error) {
	k, err := dialKCM(socket)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	if name == "" {
		rep, err := k.call(kcmOpGetDefaultCache)
		if err != nil {
			return nil, err
		}
		end := bytes.IndexByte(rep, 0)
		if end <= 0 {
			return nil, errors.New("KCM: malformed default cache name")
		}
		name = string(rep[:end])
	}
	cache := &kcmCache{name: name}
	princ, err := k.call(kcmOpGetPrincipal, cString(name))
	var ke *kcmError
	switch {
	case errors.As(err, &ke) && (ke.code == kcmFCCNoFile || ke.code == kcmCCNotFound || ke.code == kcmCCEnd):
		// No such cache (MIT's and sssd's answer), or one without a
		// principal (Heimdal's).
		return cache, errKCMNoCache
	case err != nil:
		return cache, err
	case len(princ) == 0: // Heimdal may answer 0 and no principal
		return cache, errKCMNoCache
	}
	if n, ok := skipPrincipal(princ); !ok || n != len(princ) {
		return cache, errors.New("KCM: malformed principal")
	}
	cache.princ = princ
	rep, err := k.call(kcmOpGetCredList, cString(name))
	switch {
	case err == nil:
		cache.list = true
		cache.creds, err = parseKCMCredList(rep)
		return cache, err
	case !kcmUnsupported(err):
		return cache, err
	}
	rep, err = k.call(kcmOpGetCredUUIDList, cString(name))
	if err != nil {
		return cache, err
	}
	if len(rep)%kcmUUIDLen != 0 {
		return cache, errors.New("KCM: malformed credential UUID list")
	}
	for i := 0; i < len(rep); i += kcmUUIDLen {
		cred, err := k.call(kcmOpGetCredByUUID, cString(name), rep[i:i+kcmUUIDLen])
		if errors.As(err, &ke) && (ke.code == kcmCCEnd || ke.code == kcmCCNotFound) {
			continue // removed since the list was made
		}
		if err != nil {
			return cache, err
		}
		if n, ok := skipCredential(cred); !ok || n != len(cred) {
			return cache, errors.New("KCM: malformed credential")
		}
		cache.creds = append(cache.creds, cred)
	}
	return cache, nil
}

// parseKCMCredList splits the reply to GET_CRED_LIST: a 4-byte count,
// then count times a 4-byte length and a credential.
func parseKCMCredList(b []byte) ([][]byte, error) {
	if len(b) < 4 {
		return nil, errors.New("KCM: malformed credential list")
	}
	count := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(count) > uint64(len(b)/4) {
		return nil, errors.New("KCM: malformed credential list")
	}
	creds := make([][]byte, 0, count)
	for i := uint32(0); i < count; i++ {
		if len(b) < 4 {
			return nil, errors.New("KCM: malformed credential list")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, errors.New("KCM: malformed credential list")
		}
		cred := b[:n]
		if m, ok := skipCredential(cred); !ok || m != len(cred) {
			return nil, errors.New("KCM: malformed credential")
		}
		creds = append(creds, cred)
		b = b[n:]
	}
	return creds, nil
}

// The ccache v4 serialization, checked here before gokrb5's parser, which
// does not check bounds and panics on short input.

// skipPrincipal returns the length of the principal at the start of b:
// name type, component count, realm and components, each string a 4-byte
// length and bytes.
func skipPrincipal(b []byte) (int, bool) {
	if len(b) < 8 {
		return 0, false
	}
	count := binary.BigEndian.Uint32(b[4:])
	if count > 64 {
		return 0, false
	}
	p := 8
	for i := uint32(0); i <= count; i++ { // the realm, then the components
		n, ok := skipData(b[p:])
		if !ok {
			return 0, false
		}
		p += n
	}
	return p, true
}

// skipData returns the length of the counted string at the start of b.
func skipData(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return 0, false
	}
	return 4 + int(n), true
}

// skipCredential returns the length of the credential at the start of b:
// client, server, keyblock (16-bit enctype, key), four times, is_skey,
// flags, addresses, authorization data, ticket, second ticket.
func skipCredential(b []byte) (int, bool) {
	p := 0
	for i := 0; i < 2; i++ {
		n, ok := skipPrincipal(b[p:])
		if !ok {
			return 0, false
		}
		p += n
	}
	if len(b)-p < 2 {
		return 0, false
	}
	p += 2
	n, ok := skipData(b[p:])
	if !ok {
		return 0, false
	}
	p += n
	if len(b)-p < 4*4+1+4 {
		return 0, false
	}
	p += 4*4 + 1 + 4
	for i := 0; i < 2; i++ { // addresses, then authorization data: 16-bit type and data each
		if len(b)-p < 4 {
			return 0, false
		}
		count := binary.BigEndian.Uint32(b[p:])
		p += 4
		if uint64(count) > uint64(len(b)-p)/6 {
			return 0, false
		}
		for j := uint32(0); j < count; j++ {
			if len(b)-p < 2 {
				return 0, false
			}
			p += 2
			n, ok := skipData(b[p:])
			if !ok {
				return 0, false
			}
			p += n
		}
	}
	for i := 0; i < 2; i++ { // ticket, second ticket
		n, ok := skipData(b[p:])
		if !ok {
			return 0, false
		}
		p += n
	}
	return p, true
}

// fileImage returns the cache as the bytes of a version 4 FILE: ccache
// holding the credentials for which keep returns true (all for nil).
func (c *kcmCache) fileImage(keep func(cred []byte) bool) []byte {
	b := []byte{5, 4, 0, 0} // version 0x0504, no header fields
	b = append(b, c.princ...)
	for _, cred := range c.creds {
		if keep == nil || keep(cred) {
			b = append(b, cred...)
		}
	}
	return b
}

// CCache parses the cache with gokrb5.
func (c *kcmCache) CCache() (*credentials.CCache, error) {
	cc := new(credentials.CCache)
	if err := cc.Unmarshal(c.fileImage(nil)); err != nil {
		return nil, err
	}
	return cc, nil
}

// isTGT reports whether the serialized credential cred is a
// ticket-granting ticket for the realm of the cache's principal
// (krbtgt/REALM@REALM): the one credential the ccache source uses.
func (c *kcmCache) isTGT(cred []byte) bool {
	realm, ok := principalRealm(c.princ)
	if !ok {
		return false
	}
	n, ok := skipPrincipal(cred) // the client
	if !ok {
		return false
	}
	server := cred[n:]
	srealm, ok := principalRealm(server)
	if !ok || srealm != realm || binary.BigEndian.Uint32(server[4:]) != 2 {
		return false
	}
	p := 8 + 4 + len(srealm)
	var comps []string
	for i := 0; i < 2; i++ {
		l := int(binary.BigEndian.Uint32(server[p:]))
		comps = append(comps, string(server[p+4:p+4+l]))
		p += 4 + l
	}
	return comps[0] == "krbtgt" && comps[1] == realm
}

// principalRealm returns the realm of a serialized principal.
func principalRealm(b []byte) (string, bool) {
	if _, ok := skipPrincipal(b); !ok {
		return "", false
	}
	n := binary.BigEndian.Uint32(b[8:])
	return string(b[12 : 12+n]), true
}

// kcmSocket returns the KCM socket named by [libdefaults] kcm_socket of
// the krb5.conf at confPath (and the files it includes), or the default.
func kcmSocket(confPath string) string {
	if s := libdefault(confPath, "kcm_socket", 0); s != "" {
		return s
	}
	return kcmDefaultSocket
}

// libdefault returns the first value of key in the [libdefaults] of the
// krb5.conf at path, following include and includedir as MIT does (files
// of an includedir in name order, those whose names are made of letters,
// digits, '-' and '_' or end in ".conf"). It returns "" when there is none.
func libdefault(path, key string, depth int) string {
	if depth > 8 {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case strings.HasPrefix(line, "include "):
			if v := libdefault(strings.TrimSpace(line[len("include "):]), key, depth+1); v != "" {
				return v
			}
			continue
		case strings.HasPrefix(line, "includedir "):
			dir := strings.TrimSpace(line[len("includedir "):])
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if name := e.Name(); e.IsDir() || !(strings.HasSuffix(name, ".conf") || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == "") {
					continue
				}
				if v := libdefault(filepath.Join(dir, e.Name()), key, depth+1); v != "" {
					return v
				}
			}
			continue
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[] ")
			continue
		}
		if section != "libdefaults" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		return strings.TrimSpace(v)
	}
	return ""
}

// locateKCM resolves the KCM: ccache name (residual "", "uid" or
// "uid:name") for the ccache source: it reads the cache from the daemon
// and returns the location of a private spool file holding its principal
// and ticket-granting ticket, rewritten when the daemon's answer changed.
// A cache that cannot be read is a location with err set, and its spool
// file is removed.
//
// The spool file is needed because the ccache source reads files only
// (source.readCCache, credentials.LoadCCache); it lives in
// $XDG_RUNTIME_DIR/anyauth-kcm (else $TMPDIR/anyauth-kcm-UID), a
// directory of mode 0700 owned by the caller, as mode 0600, and holds no
// service ticket.
func locateKCM(name, residual, from, confPath string) ccacheLocation {
	l := ccacheLocation{name: name, from: from}
	socket := kcmSocket(confPath)
	spool := kcmSpoolPath(socket, residual)
	fail := func(err error) ccacheLocation {
		_ = os.Remove(spool) // no stale copy of a cache that is gone
		l.err = err
		return l
	}
	if socket == "-" {
		return fail(fmt.Errorf("credential cache %s: KCM is turned off (kcm_socket = -)", name))
	}
	cache, err := readKCM(socket, residual)
	switch {
	case errors.Is(err, errKCMNoCache):
		if residual == "" {
			name += " (KCM:" + cache.name + ")" // the primary cache
		}
		return fail(fmt.Errorf("the KCM daemon at %s has no credential cache %s; run kinit", socket, name))
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return fail(fmt.Errorf("credential cache %s: no KCM daemon listens on %s (kcm_socket of krb5.conf); is sssd-kcm running?", name, socket))
	case err != nil:
		return fail(fmt.Errorf("credential cache %s: KCM daemon at %s: %w", name, socket, err))
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

// kcmSpoolPath returns the spool file of the KCM cache residual at
// socket: in $XDG_RUNTIME_DIR/anyauth-kcm, else $TMPDIR/anyauth-kcm-UID.
func kcmSpoolPath(socket, residual string) string {
	dir := filepath.Join(os.TempDir(), "anyauth-kcm-"+strconv.Itoa(os.Getuid()))
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" && filepath.IsAbs(rt) {
		dir = filepath.Join(rt, "anyauth-kcm")
	}
	sum := sha256.Sum256([]byte(socket + "\x00" + residual))
	return filepath.Join(dir, "kcm-"+hex.EncodeToString(sum[:12]))
}

// privateDir makes sure dir is a directory of mode 0700 owned by the
// caller, creating it if needed: never one that someone else made (or a
// symlink) in a shared temp dir.
func privateDir(dir string) error {
	uid := os.Getuid()
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("KCM spool directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("KCM spool directory: %w", err)
	}
	if owner, ok := fileOwner(fi); !ok || owner != uid || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		return fmt.Errorf("KCM spool directory %s is not a directory of mode 0700 owned by uid %d", dir, uid)
	}
	return nil
}

// fileOwner returns the uid that owns the file of fi, where the system
// has uids (the Uid of a unix syscall.Stat_t).
func fileOwner(fi os.FileInfo) (int, bool) {
	v := reflect.ValueOf(fi.Sys())
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0, false
	}
	if f := v.FieldByName("Uid"); f.IsValid() && f.CanUint() {
		return int(f.Uint()), true
	}
	return 0, false
}

// writePrivate replaces path with data (mode 0600) atomically.
func writePrivate(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
