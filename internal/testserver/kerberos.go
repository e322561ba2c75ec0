package testserver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kerberos names used by StartKDC.
const (
	// KerberosRealm is the realm of the test KDC.
	KerberosRealm = "ANYAUTH.TEST"
	// KerberosUser is the user principal's name without realm; its
	// password is Password, so that the same credentials work for Basic,
	// Digest and Kerberos (GssapiBasicAuth) alike.
	KerberosUser = User
	// KerberosPrincipal is the user principal, as mod_auth_gssapi puts it
	// in REMOTE_USER.
	KerberosPrincipal = KerberosUser + "@" + KerberosRealm
	// KerberosSPN is the service principal of the GSSAPI Apache, reached
	// as http://localhost:PORT. The keytab also holds KerberosSPNAddr.
	KerberosSPN = "HTTP/localhost"
	// KerberosSPNAddr is the service principal for a client that derives
	// the SPN from http://127.0.0.1:PORT.
	KerberosSPNAddr = "HTTP/127.0.0.1"
)

// kdcMasterPassword is the master password of the throwaway database.
const kdcMasterPassword = "masterpw"

// KDC is a running MIT Kerberos KDC (krb5kdc) started by StartKDC, with its
// own database, krb5.conf and kdc.conf in Dir. It listens on Addr (UDP and
// TCP) only; its krb5.conf makes clients use TCP.
type KDC struct {
	Realm     string // KerberosRealm
	Dir       string // temp dir: configs, database, keytab, log
	Config    string // krb5.conf path, for KRB5_CONFIG
	Profile   string // kdc.conf path, for KRB5_KDC_PROFILE
	Addr      string // "127.0.0.1:PORT"
	User      string // KerberosUser ("alice")
	Principal string // KerberosPrincipal ("alice@ANYAUTH.TEST")
	Password  string // the user's password (Password)
	Keytab    string // keytab with KerberosSPN and KerberosSPNAddr
	// UserKeytab holds the user's keys (Principal, derived from
	// Password), for clients that log in with a keytab.
	UserKeytab string
	SPNs       []string      // service principals in Keytab, without realm
	Startup    time.Duration // from exec of krb5kdc until it was serving

	kinit     string
	logFile   string // krb5kdc's log (also kdb5_util's and kadmin.local's)
	stderrLog string
	proc
	closeOnce sync.Once
	closeErr  error
}

// StartKDC creates a Kerberos database for KerberosRealm in a fresh temp dir
// with the user KerberosPrincipal (password Password) and the service
// principals KerberosSPN and KerberosSPNAddr (random keys, exported to
// Keytab), then starts krb5kdc in the foreground on a free 127.0.0.1 port
// and waits until it serves. The error wraps ErrNotInstalled when krb5kdc,
// kdb5_util, kadmin.local or kinit is missing (Debian: krb5-kdc,
// krb5-admin-server, krb5-user).
//
// The generated krb5.conf has no DNS lookups, no reverse DNS, no hostname
// canonicalization and udp_preference_limit = 1 (TCP always); it maps
// localhost and 127.0.0.1 to the realm.
func StartKDC() (*KDC, error) {
	var bins [4]string
	for i, b := range []struct{ env, name string }{
		{"TESTSERVER_KRB5KDC", "krb5kdc"},
		{"TESTSERVER_KDB5_UTIL", "kdb5_util"},
		{"TESTSERVER_KADMIN_LOCAL", "kadmin.local"},
		{"TESTSERVER_KINIT", "kinit"},
	} {
		p, err := findBinary(b.env, []string{b.name}, "/usr/sbin/"+b.name, "/usr/bin/"+b.name)
		if err != nil {
			return nil, err
		}
		bins[i] = p
	}
	krb5kdc, kdb5util, kadmin := bins[0], bins[1], bins[2]

	// Apache workers (www-data when we are root) read the keytab and
	// krb5.conf from this dir.
	dir, _, err := serverDir("kdc", dropPrivileges)
	if err != nil {
		return nil, err
	}
	k := &KDC{
		Realm:      KerberosRealm,
		Dir:        dir,
		Config:     filepath.Join(dir, "krb5.conf"),
		Profile:    filepath.Join(dir, "kdc.conf"),
		User:       KerberosUser,
		Principal:  KerberosPrincipal,
		Password:   Password,
		Keytab:     filepath.Join(dir, "http.keytab"),
		UserKeytab: filepath.Join(dir, "user.keytab"),
		SPNs:       []string{KerberosSPN, KerberosSPNAddr},
		kinit:      bins[3],
		logFile:    filepath.Join(dir, "kdc.log"),
	}
	ok := false
	defer func() {
		if !ok {
			k.Close()
		}
	}()

	// The database does not depend on the port: create it once, with a
	// placeholder port in the configs.
	if err := k.writeConfigs(0); err != nil {
		return nil, err
	}
	if out, err := k.run(kdb5util, nil, "create", "-s", "-r", k.Realm, "-P", kdcMasterPassword); err != nil {
		return nil, fmt.Errorf("testserver: kdb5_util create: %w\n%s", err, out)
	}
	// kadmin.local -q exits 0 even when the query fails: check its output.
	for _, q := range []string{
		fmt.Sprintf("addprinc -pw %q %s", k.Password, k.Principal),
		"addprinc -randkey " + KerberosSPN,
		"addprinc -randkey " + KerberosSPNAddr,
		fmt.Sprintf("ktadd -k %s %s %s", k.Keytab, KerberosSPN, KerberosSPNAddr),
		fmt.Sprintf("ktadd -norandkey -k %s %s", k.UserKeytab, k.Principal),
	} {
		out, err := k.run(kadmin, nil, "-r", k.Realm, "-q", q)
		if err == nil && (strings.Contains(out, " while ") || strings.Contains(out, "usage:")) {
			err = errors.New("query failed")
		}
		if err != nil {
			return nil, fmt.Errorf("testserver: kadmin.local -q %q: %w\n%s", q, err, out)
		}
	}
	if err := os.Chmod(k.Keytab, 0o644); err != nil {
		return nil, fmt.Errorf("testserver: keytab: %w", err)
	}
	if err := os.Chmod(k.UserKeytab, 0o600); err != nil {
		return nil, fmt.Errorf("testserver: user keytab: %w", err)
	}

	err = retryOnTakenPort(func(attempt int) (bool, error) {
		port, err := freePort()
		if err != nil {
			return false, err
		}
		if err := k.writeConfigs(port); err != nil {
			return false, err
		}
		if err := k.startOnce(krb5kdc, attempt); err != nil {
			k.forget()
			return strings.Contains(err.Error(), "in use"), err
		}
		k.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return k, nil
}

// StartKDCForTest starts a KDC, closes it when the test ends and, if the
// test failed, logs the KDC log. A KDC that is not installed skips the
// test, or fails it when InCI.
func StartKDCForTest(t testing.TB) *KDC {
	t.Helper()
	return forTest(t, StartKDC, func(k *KDC) string { return "KDC log:\n" + k.Log() })
}

func (k *KDC) writeConfigs(port int) error {
	krb5 := fmt.Sprintf(`# Generated by github.com/anyauth/anyauth/internal/testserver.
[libdefaults]
	default_realm = %[1]s
	dns_lookup_kdc = false
	dns_lookup_realm = false
	dns_canonicalize_hostname = false
	rdns = false
	udp_preference_limit = 1
	forwardable = false
	default_ccache_name = FILE:%[2]s/ccache-default

[realms]
	%[1]s = {
		kdc = 127.0.0.1:%[3]d
	}

[domain_realm]
	localhost = %[1]s
	127.0.0.1 = %[1]s
`, k.Realm, k.Dir, port)
	kdc := fmt.Sprintf(`# Generated by github.com/anyauth/anyauth/internal/testserver.
[kdcdefaults]
	kdc_listen = 127.0.0.1:%[3]d
	kdc_tcp_listen = 127.0.0.1:%[3]d

[realms]
	%[1]s = {
		database_name = %[2]s/principal
		key_stash_file = %[2]s/stash
		acl_file = %[2]s/kadm5.acl
		admin_keytab = FILE:%[2]s/kadm5.keytab
		kdc_listen = 127.0.0.1:%[3]d
		kdc_tcp_listen = 127.0.0.1:%[3]d
		max_life = 10h
		max_renewable_life = 7d
	}

[logging]
	kdc = FILE:%[2]s/kdc.log
	admin_server = FILE:%[2]s/kadmin.log
	default = FILE:%[2]s/kadmin.log
`, k.Realm, k.Dir, port)
	if err := os.WriteFile(k.Config, []byte(krb5), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(k.Config, 0o644); err != nil {
		return err
	}
	return os.WriteFile(k.Profile, []byte(kdc), 0o600)
}

// Env returns the environment variables that point the MIT tools and
// libraries (and gokrb5 users that read KRB5_CONFIG) at this KDC.
func (k *KDC) Env() []string {
	return []string{"KRB5_CONFIG=" + k.Config, "KRB5_KDC_PROFILE=" + k.Profile}
}

// run runs an MIT tool with the KDC's environment and returns its combined
// output.
func (k *KDC) run(bin string, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = k.Dir
	cmd.Env = append(serverEnv(), k.Env()...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%s timed out", filepath.Base(bin))
	}
}

func (k *KDC) startOnce(bin string, attempt int) error {
	k.stderrLog = filepath.Join(k.Dir, fmt.Sprintf("krb5kdc-stderr-%d.log", attempt))
	logStart := int64(0)
	if fi, err := os.Stat(k.logFile); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(bin, "-n", "-r", k.Realm, "-P", filepath.Join(k.Dir, "krb5kdc.pid"))
	cmd.Dir = k.Dir
	cmd.Env = append(serverEnv(), k.Env()...)
	began := time.Now()
	if err := k.start("krb5kdc", cmd, k.stderrLog); err != nil {
		return err
	}
	// krb5kdc logs "commencing operation" once its sockets are bound.
	err := k.ready(15*time.Second, func() error {
		if data, err := os.ReadFile(k.logFile); err == nil && int64(len(data)) > logStart &&
			bytes.Contains(data[logStart:], []byte("commencing operation")) {
			return nil
		}
		return errNotReady
	})
	if err != nil {
		return fmt.Errorf("testserver: krb5kdc: %w\n%s", err, k.Log())
	}
	k.Startup = time.Since(began)
	return nil
}

// Kinit gets a TGT for the user with kinit (password on stdin, KRB5_CONFIG
// set) into ccache: a path (FILE: is prepended) or a TYPE:residual name.
func (k *KDC) Kinit(ccache string) error { return k.kinitWith(k.Password, ccache) }

// KinitFor is Kinit with a ticket lifetime (kinit -l), e.g. a few seconds
// for a test that needs an expired ticket in a cache. The ticket is not
// renewable.
func (k *KDC) KinitFor(ccache string, lifetime time.Duration) error {
	return k.kinitWith(k.Password, ccache, "-l", fmt.Sprintf("%ds", int(lifetime.Seconds())))
}

func (k *KDC) kinitWith(password, ccache string, args ...string) error {
	if !strings.Contains(ccache, ":") {
		ccache = "FILE:" + ccache
	}
	argv := append(append([]string{"-c", ccache}, args...), k.Principal)
	out, err := k.run(k.kinit, []byte(password+"\n"), argv...)
	if err != nil {
		return fmt.Errorf("testserver: kinit %s: %w\n%s", k.Principal, err, out)
	}
	return nil
}

// Log returns the KDC log (krb5kdc, plus what krb5kdc wrote on stderr).
func (k *KDC) Log() string {
	var b strings.Builder
	for _, f := range []string{k.logFile, k.stderrLog} {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n%s", filepath.Base(f), data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// countLog counts the log lines that contain all of words.
func (k *KDC) countLog(words ...string) int {
	data, _ := os.ReadFile(k.logFile)
	n := 0
lines:
	for _, line := range strings.Split(string(data), "\n") {
		for _, w := range words {
			if !strings.Contains(line, w) {
				continue lines
			}
		}
		n++
	}
	return n
}

// ASRequests counts the AS-REQs (TGT requests, e.g. kinit) the KDC has
// logged, successful or not.
func (k *KDC) ASRequests() int { return k.countLog("krb5kdc[", "AS_REQ") }

// TGSRequests counts the TGS-REQs (service ticket requests) the KDC has
// logged, successful or not. krb5kdc logs a request before it sends the
// reply, so every request whose answer a client has received is counted.
func (k *KDC) TGSRequests() int { return k.countLog("krb5kdc[", "TGS_REQ") }

// TGSRequestsFor counts the TGS-REQs for the service principal spn, e.g.
// KerberosSPN (without or with realm).
func (k *KDC) TGSRequestsFor(spn string) int {
	if !strings.Contains(spn, "@") {
		spn += "@" + k.Realm
	}
	return k.countLog("krb5kdc[", "TGS_REQ", " for "+spn)
}

// Close stops krb5kdc and removes Dir. It is idempotent and safe to call
// on a nil KDC.
func (k *KDC) Close() error {
	if k == nil {
		return nil
	}
	k.closeOnce.Do(func() {
		var errs []error
		if k.cmd != nil {
			errs = append(errs, k.stop())
		}
		if k.Dir != "" {
			errs = append(errs, os.RemoveAll(k.Dir))
		}
		k.closeErr = errors.Join(errs...)
	})
	return k.closeErr
}
