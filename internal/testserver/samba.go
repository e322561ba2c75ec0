package testserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Names of the Samba Active Directory domain started by StartSambaAD.
const (
	// ADRealm is the Kerberos realm (and DNS domain, lower-cased) of the
	// AD domain.
	ADRealm = "CORP.TEST"
	// ADDomain is its NetBIOS domain name, as in CORP\alice.
	ADDomain = "CORP"
	// ADComputer is the NetBIOS name of the domain controller.
	ADComputer = "DC1"
	// ADUser is a domain user (AES keys), password ADPassword.
	ADUser     = "alice"
	ADPassword = "Alice-pw-2026!"
	// ADSecondUser is a second domain user whose password ADSecondPassword
	// is not ASCII (UTF-8 on the wire and in kinit's stdin).
	ADSecondUser     = "bob"
	ADSecondPassword = "Bøb-pässwörd-2026!"
	// ADPrincipal and ADSecondPrincipal are the users' Kerberos
	// principals, as mod_auth_gssapi puts them in REMOTE_USER.
	ADPrincipal       = ADUser + "@" + ADRealm
	ADSecondPrincipal = ADSecondUser + "@" + ADRealm
	// ADAdminPassword is the password of the domain's Administrator.
	ADAdminPassword = "Admin-pw-2026!"
	// ADSPN is a service principal of the user account ADSPNAccount,
	// whose msDS-SupportedEncryptionTypes is 24 (AES128 and AES256 only):
	// its keytab holds aes256-cts and aes128-cts keys.
	ADSPN        = "HTTP/localhost"
	ADSPNAccount = "http-localhost"
	// ADSPNAddr is a service principal of the user account
	// ADSPNAddrAccount, whose msDS-SupportedEncryptionTypes is 4 (RC4
	// only): its keytab holds one arcfour-hmac key, and tickets for it are
	// RC4-encrypted.
	ADSPNAddr        = "HTTP/127.0.0.1"
	ADSPNAddrAccount = "http-addr"
)

// winbindSocketDir is the winbindd socket directory compiled into
// libwbclient (and so into wbinfo, ntlm_auth and gss-ntlmssp): Debian's
// /run/samba/winbindd. libwbclient honours SELFTEST_WINBINDD_SOCKET_DIR only
// when nss_wrapper is preloaded, so the AD DC's winbindd must listen there
// for any client of the domain to find it.
const winbindSocketDir = "/run/samba/winbindd"

// adLockFile serializes AD DCs on the machine (across test binaries):
// only one winbindd can own winbindSocketDir.
const adLockFile = "/run/samba/anyauth-testserver-ad.lock"

// sambaADTimeout bounds each samba-tool run and the wait for the KDC.
const sambaADTimeout = 60 * time.Second

// SambaAD is a running Samba 4 Active Directory domain controller started
// by StartSambaAD: realm ADRealm, NetBIOS domain ADDomain, with its whole
// state (sam.ldb, secrets, logs, pid files, sockets) in Dir, except the
// public winbindd socket, which is /run/samba/winbindd/pipe (see
// StartSambaAD).
type SambaAD struct {
	Realm   string // ADRealm
	Domain  string // ADDomain
	Dir     string // temp dir: smb.conf, private/, state/, logs, keytabs
	SmbConf string // Samba's smb.conf (samba, samba-tool -s)
	Config  string // client krb5.conf pointing at KDCAddr, for KRB5_CONFIG
	// KDCAddr is the address of Samba's KDC ("krb5 port"), TCP and UDP;
	// the client krb5.conf uses TCP. KpasswdAddr is its kpasswd service.
	KDCAddr     string
	KpasswdAddr string
	// Users maps the domain users' names (ADUser, ADSecondUser) to their
	// passwords.
	Users map[string]string
	// SPNs are the service principals (without realm) of the keytabs, see
	// KeytabPath; Keytab holds all of them (for Apache).
	SPNs   []string
	Keytab string
	// WinbindPrivDir is winbindd's privileged pipe directory (mode 0750,
	// group: the group the test servers' workers run as, so that
	// gss-ntlmssp in Apache can ask winbindd to check NTLM responses).
	WinbindPrivDir string
	// Provision is how long provisioning took (samba-tool domain
	// provision, users, SPNs, keytabs); Startup from the exec of samba
	// until kinit and winbindd answered.
	Provision time.Duration
	Startup   time.Duration

	keytabs   map[string]string // SPN -> keytab path
	bins      sambaBins
	logFile   string // samba's log (also winbindd's)
	setupLog  string // output of samba-tool and friends
	stderrLog string
	lockHeld  bool
	ownWbDir  bool // winbindSocketDir is ours to remove
	proc
	closeOnce sync.Once
	closeErr  error
}

type sambaBins struct {
	samba, sambaTool, python, kinit, wbinfo string
}

// StartSambaAD provisions a Samba AD domain controller for ADRealm in a
// fresh temp dir and starts it, as root only (samba refuses anything else).
// It takes a few seconds (see Provision and Startup). The error wraps
// ErrNotInstalled when a program is missing (Debian packages samba,
// samba-ad-dc, samba-ad-provision, winbind, krb5-user) or when not root.
//
// The domain has the users ADUser and ADSecondUser (passwords never
// expire), the service accounts ADSPNAccount (SPN ADSPN, AES only) and
// ADSPNAddrAccount (SPN ADSPNAddr, RC4 only), and a keytab per SPN
// exported with samba-tool domain exportkeytab (KeytabPath) plus one with
// both (Keytab), readable by everyone.
//
// Samba runs in the foreground in its own process group, in the "single"
// process model (one samba process and the winbindd it starts, about 45
// MiB PSS, instead of 14 processes with the default prefork model), with
// only the "kdc" and "winbindd" services (no SMB, LDAP, RPC, DNS or
// NetBIOS listeners): the KDC listens on 127.0.0.1 only, on free ports ("krb5
// port", "kpasswd port"). winbindd's public socket must be the compiled-in
// /run/samba/winbindd (see winbindSocketDir): therefore one AD DC at a
// time runs on a machine (StartSambaAD waits for the lock file
// /run/samba/anyauth-testserver-ad.lock) and it fails if another winbindd
// (a system winbind service) answers there. Close removes
// /run/samba/winbindd.
func StartSambaAD() (*SambaAD, error) {
	bins, err := findSambaBins()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the Samba AD DC must be started as root", ErrNotInstalled)
	}
	dir, as, err := serverDir("samba-ad", dropPrivileges)
	if err != nil {
		return nil, err
	}
	a := &SambaAD{
		Realm:          ADRealm,
		Domain:         ADDomain,
		Dir:            dir,
		SmbConf:        filepath.Join(dir, "etc", "smb.conf"),
		Config:         filepath.Join(dir, "krb5.conf"),
		Users:          map[string]string{ADUser: ADPassword, ADSecondUser: ADSecondPassword},
		SPNs:           []string{ADSPN, ADSPNAddr},
		Keytab:         filepath.Join(dir, "keytabs", "http.keytab"),
		WinbindPrivDir: filepath.Join(dir, "state", "winbindd_privileged"),
		keytabs: map[string]string{
			ADSPN:     filepath.Join(dir, "keytabs", "http-localhost.keytab"),
			ADSPNAddr: filepath.Join(dir, "keytabs", "http-127.0.0.1.keytab"),
		},
		bins:     bins,
		logFile:  filepath.Join(dir, "log", "samba.log"),
		setupLog: filepath.Join(dir, "log", "setup.log"),
	}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	if len(dir) > 60 {
		// Unix socket paths (msg.sock/PID, the privileged pipe) must stay
		// under 108 bytes.
		return nil, fmt.Errorf("testserver: temp dir %q is too long for Samba's sockets", dir)
	}
	for _, d := range []string{"log", "run", "keytabs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := a.lock(3 * time.Minute); err != nil {
		return nil, err
	}
	if err := a.claimWinbindSocket(); err != nil {
		return nil, err
	}

	began := time.Now()
	kdcPort, kpasswdPort, err := twoFreePorts()
	if err != nil {
		return nil, err
	}
	if err := a.provision(kdcPort, kpasswdPort); err != nil {
		return nil, err
	}
	if err := a.addAccounts(); err != nil {
		return nil, err
	}
	// winbindd insists on owner root and mode 0750; the group is ours to
	// choose: the one Apache's workers run as.
	if err := os.MkdirAll(a.WinbindPrivDir, 0o750); err != nil {
		return nil, err
	}
	if err := os.Chmod(a.WinbindPrivDir, 0o750); err != nil {
		return nil, err
	}
	if as != nil {
		if err := os.Chown(a.WinbindPrivDir, 0, as.GID); err != nil {
			return nil, err
		}
	}
	a.Provision = time.Since(began)

	err = retryOnTakenPort(func(attempt int) (bool, error) {
		if attempt > 0 { // the provision chose the first ports
			var err error
			if kdcPort, kpasswdPort, err = twoFreePorts(); err != nil {
				return false, err
			}
		}
		if err := a.writeConfigs(kdcPort, kpasswdPort); err != nil {
			return false, err
		}
		if err := a.startOnce(attempt); err != nil {
			a.forget()
			return strings.Contains(err.Error(), "ADDRESS_ALREADY_ASSOCIATED") || strings.Contains(err.Error(), "in use"), err
		}
		a.KDCAddr = fmt.Sprintf("127.0.0.1:%d", kdcPort)
		a.KpasswdAddr = fmt.Sprintf("127.0.0.1:%d", kpasswdPort)
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// StartSambaADForTest starts a Samba AD DC, closes it when the test ends
// and, if the test failed, logs its log. A Samba that is not installed (or
// a test not running as root) skips the test, or fails it when InCI.
func StartSambaADForTest(t testing.TB) *SambaAD {
	t.Helper()
	return forTest(t, StartSambaAD, func(a *SambaAD) string { return "Samba AD log:\n" + a.Log() })
}

func findSambaBins() (sambaBins, error) {
	var b sambaBins
	for _, x := range []struct {
		dst       *string
		env, name string
	}{
		{&b.samba, "TESTSERVER_SAMBA", "samba"},
		{&b.sambaTool, "TESTSERVER_SAMBA_TOOL", "samba-tool"},
		{&b.kinit, "TESTSERVER_KINIT", "kinit"},
		{&b.wbinfo, "TESTSERVER_WBINFO", "wbinfo"},
	} {
		p, err := findBinary(x.env, []string{x.name}, "/usr/sbin/"+x.name, "/usr/bin/"+x.name)
		if err != nil {
			return b, err
		}
		*x.dst = p
	}
	// The schema files come with samba-ad-provision, only recommended by
	// samba-ad-dc.
	if _, err := os.Stat("/usr/share/samba/setup/ad-schema"); err != nil {
		return b, fmt.Errorf("%w: samba-ad-provision: %v", ErrNotInstalled, err)
	}
	// samba-tool's own interpreter has the samba Python modules, which a
	// python3 earlier in PATH (pyenv, a venv) may lack.
	b.python = "/usr/bin/python3"
	if f, err := os.Open(b.sambaTool); err == nil {
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if fields := strings.Fields(strings.TrimPrefix(line, "#!")); strings.HasPrefix(line, "#!") && len(fields) == 1 {
			b.python = fields[0]
		}
	}
	return b, nil
}

// lock takes adLockFile (O_EXCL, holding our pid), waiting while a live
// process holds it; a lock whose process is gone is taken over.
func (a *SambaAD) lock(wait time.Duration) error {
	if err := os.MkdirAll(filepath.Dir(adLockFile), 0o755); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		f, err := os.OpenFile(adLockFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			if err != nil {
				os.Remove(adLockFile)
				return err
			}
			a.lockHeld = true
			return nil
		}
		if !os.IsExist(err) {
			return err
		}
		data, _ := os.ReadFile(adLockFile)
		pid, perr := strconv.Atoi(strings.TrimSpace(string(data)))
		if perr == nil && pid > 0 && !processAlive(pid) {
			os.Remove(adLockFile) // stale: its holder died without Close
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testserver: another Samba AD DC (pid %s in %s) is running; waited %v", strings.TrimSpace(string(data)), adLockFile, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// claimWinbindSocket makes sure no other winbindd serves winbindSocketDir.
// Our winbindd will (re)create the directory and its pipe; Close removes
// them, a stale pipe left by a winbindd that is gone included.
func (a *SambaAD) claimWinbindSocket() error {
	pipe := filepath.Join(winbindSocketDir, "pipe")
	if c, err := net.DialTimeout("unix", pipe, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("testserver: a winbindd already listens on %s (system winbind or samba service?); "+
			"the AD DC's winbindd needs that compiled-in path", pipe)
	}
	a.ownWbDir = true
	return nil
}

func twoFreePorts() (int, int, error) {
	p1, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	for i := 0; i < 10; i++ {
		p2, err := freePort()
		if err != nil {
			return 0, 0, err
		}
		if p2 != p1 {
			return p1, p2, nil
		}
	}
	return 0, 0, errors.New("testserver: no second free port")
}

// run runs a program with the DC's environment, appending its output to
// the setup log, and returns the output.
func (a *SambaAD) run(stdin []byte, bin string, args ...string) (string, error) {
	return a.command(true, stdin, bin, args...)
}

// command is run, logging the output only if log.
func (a *SambaAD) command(log bool, stdin []byte, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = a.Dir
	cmd.Env = append(serverEnv(), a.Env()...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(sambaADTimeout):
		_ = cmd.Process.Kill()
		<-done
		err = fmt.Errorf("%s timed out", filepath.Base(bin))
	}
	if !log {
		return out.String(), err
	}
	if f, ferr := os.OpenFile(a.setupLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); ferr == nil {
		fmt.Fprintf(f, "$ %s %s # %v\n%s", filepath.Base(bin), strings.Join(redact(args), " "),
			time.Since(began).Round(time.Millisecond), out.String())
		if err != nil {
			fmt.Fprintf(f, "=> %v\n", err)
		}
		f.Close()
	}
	return out.String(), err
}

// redact hides the passwords in logged command lines.
func redact(args []string) []string {
	out := make([]string, len(args))
	for i, s := range args {
		for _, pw := range []string{ADPassword, ADSecondPassword, ADAdminPassword} {
			s = strings.ReplaceAll(s, pw, "***")
		}
		out[i] = s
	}
	return out
}

func (a *SambaAD) tool(args ...string) error {
	args = append(args, "-s", a.SmbConf)
	out, err := a.run(nil, a.bins.sambaTool, args...)
	if err != nil {
		return fmt.Errorf("testserver: samba-tool %s: %w\n%s", strings.Join(redact(args), " "), err, out)
	}
	return nil
}

// provision runs samba-tool domain provision into Dir, every path of the
// resulting smb.conf inside Dir except the winbindd socket directory.
func (a *SambaAD) provision(kdcPort, kpasswdPort int) error {
	// An empty configuration to start from, not /etc/samba/smb.conf,
	// whose settings provision would copy.
	empty := filepath.Join(a.Dir, "etc", "empty.conf")
	if err := os.MkdirAll(filepath.Dir(empty), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return err
	}
	args := []string{"domain", "provision", "-s", empty, "--targetdir=" + a.Dir,
		"--realm=" + ADRealm, "--domain=" + ADDomain, "--host-name=" + strings.ToLower(ADComputer),
		"--host-ip=127.0.0.1", "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307",
		"--adminpass=" + ADAdminPassword}
	for _, o := range a.options(kdcPort, kpasswdPort) {
		args = append(args, "--option="+o)
	}
	out, err := a.run(nil, a.bins.sambaTool, args...)
	if err != nil {
		return fmt.Errorf("testserver: samba-tool domain provision: %w\n%s", err, out)
	}
	return nil
}

// options are the smb.conf settings given to provision (besides those
// --targetdir sets: private dir, lock directory, state directory, cache
// directory, binddns dir).
func (a *SambaAD) options(kdcPort, kpasswdPort int) []string {
	d := a.Dir
	return []string{
		"interfaces=127.0.0.1",
		"bind interfaces only=yes",
		"server services=kdc, winbindd",
		fmt.Sprintf("krb5 port=%d", kdcPort),
		fmt.Sprintf("kpasswd port=%d", kpasswdPort),
		"pid directory=" + d + "/run",
		"ncalrpc dir=" + d + "/run/ncalrpc",
		"ntp signd socket directory=" + d + "/run/ntp_signd",
		"winbindd socket directory=" + winbindSocketDir,
		"log file=" + a.logFile,
		"max log size=0",
		"log level=1 auth_audit:3",
		"panic action=",
	}
}

// addAccounts creates the users and service accounts in sam.ldb (samba is
// not running yet) and exports the keytabs.
func (a *SambaAD) addAccounts() error {
	for _, c := range [][]string{
		{"user", "create", ADUser, ADPassword},
		{"user", "create", ADSecondUser, ADSecondPassword},
		{"user", "create", ADSPNAccount, "--random-password"},
		{"user", "create", ADSPNAddrAccount, "--random-password"},
		{"spn", "add", ADSPN, ADSPNAccount},
		{"spn", "add", ADSPNAddr, ADSPNAddrAccount},
	} {
		if err := a.tool(c...); err != nil {
			return err
		}
	}
	// What samba-tool user setexpiry --noexpiry does, and the
	// msDS-SupportedEncryptionTypes that samba-tool has no command for
	// (ldbmodify would need ldb-tools), in one run of samba-tool's Python.
	script := filepath.Join(a.Dir, "etc", "accounts.py")
	if err := os.WriteFile(script, []byte(accountsPy), 0o644); err != nil {
		return err
	}
	args := []string{script, a.SmbConf, filepath.Join(a.Dir, "private", "sam.ldb"),
		ADUser + "=", ADSecondUser + "=", ADSPNAccount + "=24", ADSPNAddrAccount + "=4"}
	if out, err := a.run(nil, a.bins.python, args...); err != nil {
		return fmt.Errorf("testserver: setting account flags: %w\n%s", err, out)
	}
	for _, spn := range a.SPNs {
		for _, kt := range []string{a.keytabs[spn], a.Keytab} {
			if err := a.tool("domain", "exportkeytab", kt, "--principal="+spn+"@"+ADRealm); err != nil {
				return err
			}
			// Apache's workers read it.
			if err := os.Chmod(kt, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// accountsPy sets "password never expires" on each account named in its
// arguments (NAME=ENCTYPES) and, if ENCTYPES is not empty,
// msDS-SupportedEncryptionTypes.
const accountsPy = `import sys
import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=sys.argv[2], session_info=system_session(), lp=lp)
for arg in sys.argv[3:]:
    name, enctypes = arg.split("=", 1)
    flt = "(&(objectClass=user)(sAMAccountName=%s))" % ldb.binary_encode(name)
    db.setexpiry(flt, 0, no_expiry_req=True)
    if enctypes:
        res = db.search(base=db.domain_dn(), scope=ldb.SCOPE_SUBTREE, expression=flt, attrs=["dn"])
        if len(res) != 1:
            sys.exit("no account %s" % name)
        m = ldb.Message(res[0].dn)
        m["msDS-SupportedEncryptionTypes"] = ldb.MessageElement(
            enctypes, ldb.FLAG_MOD_REPLACE, "msDS-SupportedEncryptionTypes")
        db.modify(m)
`

var (
	krb5PortLine    = regexp.MustCompile(`(?m)^(\s*krb5 port\s*=).*$`)
	kpasswdPortLine = regexp.MustCompile(`(?m)^(\s*kpasswd port\s*=).*$`)
)

// writeConfigs puts the ports in smb.conf and writes the client krb5.conf.
func (a *SambaAD) writeConfigs(kdcPort, kpasswdPort int) error {
	conf, err := os.ReadFile(a.SmbConf)
	if err != nil {
		return err
	}
	if !krb5PortLine.Match(conf) || !kpasswdPortLine.Match(conf) {
		return fmt.Errorf("testserver: no krb5 port / kpasswd port in %s", a.SmbConf)
	}
	conf = krb5PortLine.ReplaceAll(conf, []byte(fmt.Sprintf("${1} %d", kdcPort)))
	conf = kpasswdPortLine.ReplaceAll(conf, []byte(fmt.Sprintf("${1} %d", kpasswdPort)))
	if err := os.WriteFile(a.SmbConf, conf, 0o644); err != nil {
		return err
	}
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
		kpasswd_server = 127.0.0.1:%[4]d
	}

[domain_realm]
	localhost = %[1]s
	127.0.0.1 = %[1]s
	.%[5]s = %[1]s
	%[5]s = %[1]s
`, a.Realm, a.Dir, kdcPort, kpasswdPort, strings.ToLower(a.Realm))
	if err := os.WriteFile(a.Config, []byte(krb5), 0o644); err != nil {
		return err
	}
	return os.Chmod(a.Config, 0o644)
}

func (a *SambaAD) startOnce(attempt int) error {
	a.stderrLog = filepath.Join(a.Dir, "log", fmt.Sprintf("samba-stderr-%d.log", attempt))
	logStart := int64(0)
	if fi, err := os.Stat(a.logFile); err == nil {
		logStart = fi.Size()
	}
	// --no-process-group: stay in the group proc.start makes, so that
	// stopping it reaches winbindd too.
	cmd := exec.Command(a.bins.samba, "--foreground", "--no-process-group", "--model=single", "-s", a.SmbConf)
	cmd.Dir = a.Dir
	cmd.Env = append(serverEnv(), a.Env()...)
	began := time.Now()
	if err := a.start("samba", cmd, a.stderrLog); err != nil {
		return err
	}
	// Ready when kinit gets a TGT for alice and winbindd answers a ping
	// (on the compiled-in socket, as its clients will).
	cc := "FILE:" + filepath.Join(a.Dir, "ccache-ready")
	err := a.ready(sambaADTimeout, func() error {
		err := a.kinit(false, cc, ADUser, ADPassword)
		if err == nil {
			out, werr := a.command(false, nil, a.bins.wbinfo, "--ping")
			if werr == nil {
				return nil
			}
			err = fmt.Errorf("wbinfo --ping: %v: %s", werr, out)
		}
		if data, rerr := os.ReadFile(a.logFile); rerr == nil && int64(len(data)) > logStart &&
			bytes.Contains(data[logStart:], []byte("NT_STATUS_ADDRESS_ALREADY_ASSOCIATED")) {
			return errors.New("port in use (NT_STATUS_ADDRESS_ALREADY_ASSOCIATED)")
		}
		time.Sleep(45 * time.Millisecond) // kinit and wbinfo are processes: poll gently
		return fmt.Errorf("%w: %v", errNotReady, err)
	})
	if err != nil {
		tail := ""
		if data, rerr := os.ReadFile(a.logFile); rerr == nil && int64(len(data)) >= logStart {
			tail = string(data[logStart:])
		}
		return fmt.Errorf("testserver: samba: %w\n%s", err, tail)
	}
	os.Remove(strings.TrimPrefix(cc, "FILE:"))
	a.Startup = time.Since(began)
	return nil
}

// Env returns the environment variables that point the MIT tools and
// libraries (and gokrb5 users that read KRB5_CONFIG) at this DC's KDC.
func (a *SambaAD) Env() []string { return []string{"KRB5_CONFIG=" + a.Config} }

// Kinit gets a TGT for user (a name in Users, "alice@CORP.TEST" or
// "CORP\alice") with password into ccache, a path (FILE: is prepended) or
// a TYPE:residual name, running kinit with KRB5_CONFIG set and the
// password (UTF-8) on stdin.
func (a *SambaAD) Kinit(ccache, user, password string) error {
	return a.kinit(true, ccache, user, password)
}

func (a *SambaAD) kinit(log bool, ccache, user, password string) error {
	if !strings.Contains(ccache, ":") {
		ccache = "FILE:" + ccache
	}
	if d, u, ok := strings.Cut(user, `\`); ok && strings.EqualFold(d, a.Domain) {
		user = u
	}
	if !strings.Contains(user, "@") {
		user += "@" + a.Realm
	}
	out, err := a.command(log, []byte(password+"\n"), a.bins.kinit, "-c", ccache, user)
	if err != nil {
		return fmt.Errorf("testserver: kinit %s: %w\n%s", user, err, out)
	}
	return nil
}

// KeytabPath returns the keytab holding only spn ("HTTP/localhost", with
// or without "@CORP.TEST"), or "" if the DC has none for it.
func (a *SambaAD) KeytabPath(spn string) string {
	spn = strings.TrimSuffix(spn, "@"+a.Realm)
	return a.keytabs[spn]
}

// Log returns samba's log (winbindd's too), what samba wrote on stderr and
// the output of the setup commands (passwords redacted).
func (a *SambaAD) Log() string {
	var b strings.Builder
	for _, f := range []string{a.setupLog, a.logFile, a.stderrLog} {
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

// ProcessMemory is the memory of the DC's processes, read from /proc.
type ProcessMemory struct {
	Processes int   // samba processes (and winbindd) alive
	RSS       int64 // sum of their VmRSS, bytes (shared pages counted in each)
	PSS       int64 // sum of their Pss, bytes (shared pages divided among sharers)
}

// Memory sums the resident memory of every process of the DC's process
// group (Linux only).
func (a *SambaAD) Memory() (ProcessMemory, error) {
	var m ProcessMemory
	if a.cmd == nil || a.cmd.Process == nil {
		return m, errors.New("testserver: samba not running")
	}
	for _, pid := range liveGroupMembers(a.cmd.Process.Pid) {
		rss, err1 := procKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		pss, err2 := procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
		if err1 != nil || err2 != nil {
			continue // exited meanwhile
		}
		m.Processes++
		m.RSS += rss << 10
		m.PSS += pss << 10
	}
	if m.Processes == 0 {
		return m, errors.New("testserver: no samba process found in /proc")
	}
	return m, nil
}

// procKB reads the "key: N kB" line of a /proc file.
func procKB(file, key string) (int64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in %s", key, file)
}

// Close stops samba (its whole process group, winbindd included), removes
// /run/samba/winbindd, releases the lock and removes Dir. It is idempotent and safe to call on a nil SambaAD.
func (a *SambaAD) Close() error {
	if a == nil {
		return nil
	}
	a.closeOnce.Do(func() {
		var errs []error
		if a.cmd != nil {
			errs = append(errs, a.stop())
		}
		if a.ownWbDir {
			errs = append(errs, os.RemoveAll(winbindSocketDir))
		}
		if a.lockHeld {
			errs = append(errs, os.Remove(adLockFile))
		}
		if a.Dir != "" {
			errs = append(errs, os.RemoveAll(a.Dir))
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}
