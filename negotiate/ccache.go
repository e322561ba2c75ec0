package negotiate

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ccacheLocation is where a credential cache was looked for: the file
// gokrb5 can read, and how its name was found (for error messages).
type ccacheLocation struct {
	name string // as configured, e.g. "FILE:/tmp/krb5cc_0" or "DIR:/run/user/0/krb5cc"
	path string // the file to read; "" when the name cannot be read
	from string // "Kerberos.CCache", "KRB5CCNAME", "default_ccache_name", "default"
	err  error  // why name cannot be read (an unsupported type)
}

func (l ccacheLocation) String() string {
	if l.from == "" {
		return l.name
	}
	return l.name + " (" + l.from + ")"
}

// locateCCache finds the credential cache as MIT Kerberos does: explicit,
// then KRB5CCNAME, then default_ccache_name of krb5.conf (confPath), then
// /tmp/krb5cc_<uid>.
func locateCCache(explicit, confPath string) ccacheLocation {
	name, from := explicit, "Kerberos.CCache"
	if name == "" {
		name, from = os.Getenv("KRB5CCNAME"), "KRB5CCNAME"
	}
	if name == "" && confPath != "" {
		name, from = defaultCCacheName(confPath), "default_ccache_name"
	}
	if name == "" {
		name, from = "FILE:/tmp/krb5cc_"+strconv.Itoa(os.Getuid()), "default"
	}
	// KCM support: KCM:[uid[:name]] is read from the KCM daemon (kcm.go).
	if typ, residual, ok := strings.Cut(name, ":"); ok && strings.EqualFold(typ, "KCM") {
		return locateKCM(name, residual, from, confPath)
	}
	// KEYRING support: KEYRING:[anchor:]collection[:name] is read from the
	// kernel keyring with keyctl (keyring_linux.go).
	if typ, residual, ok := strings.Cut(name, ":"); ok && strings.EqualFold(typ, "KEYRING") {
		return locateKeyring(name, residual, from)
	}
	return resolveCCache(name, from)
}

// resolveCCache turns a ccache name into the file that holds the current
// cache. FILE: and plain paths name the file; DIR:dir names a collection
// whose "primary" file names the current cache, DIR::path one cache of
// it. KCM and KEYRING caches are not files: locateKCM and locateKeyring
// read them before this is reached. MEMORY and API cannot be read.
func resolveCCache(name, from string) ccacheLocation {
	l := ccacheLocation{name: name, from: from}
	typ, residual, ok := strings.Cut(name, ":")
	if !ok || strings.HasPrefix(name, "/") || len(typ) <= 1 { // a plain path (or a drive letter)
		l.path = name
		return l
	}
	switch strings.ToUpper(typ) {
	case "FILE":
		l.path = residual
	case "DIR":
		if strings.HasPrefix(residual, ":") {
			l.path = residual[1:]
			return l
		}
		primary, err := os.ReadFile(filepath.Join(residual, "primary"))
		if err != nil {
			// kinit with DIR: writes "primary" with the first cache.
			l.err = fmt.Errorf("%s has no primary cache (%v)", name, err)
			return l
		}
		tkt := strings.TrimSpace(string(primary))
		if tkt == "" || strings.ContainsAny(tkt, "/\\") {
			l.err = fmt.Errorf("%s: malformed primary file", name)
			return l
		}
		l.path = filepath.Join(residual, tkt)
	default:
		l.err = fmt.Errorf("credential cache %s is of type %s, which gokrb5 cannot read (only FILE: and DIR:); "+
			"run kinit -c FILE:/tmp/krb5cc_%d and set KRB5CCNAME to it", name, strings.ToUpper(typ), os.Getuid())
	}
	return l
}

// defaultCCacheName reads default_ccache_name from the [libdefaults] of
// krb5.conf (gokrb5 does not parse it), expanding %{uid}, %{euid} and
// %{TEMP}. It returns "" when there is none.
func defaultCCacheName(confPath string) string {
	// Following include and includedir: Fedora and RHEL set
	// default_ccache_name = KCM: in /etc/krb5.conf.d/kcm_default_ccache.
	v := libdefault(confPath, "default_ccache_name", 0)
	if v == "" {
		return ""
	}
	uid := strconv.Itoa(os.Getuid())
	return strings.NewReplacer("%{uid}", uid, "%{euid}", strconv.Itoa(os.Geteuid()), "%{TEMP}", os.TempDir(), "%{USERID}", uid).Replace(v)
}
