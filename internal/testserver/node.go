package testserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file runs the node servers' npm packages: each lives in a directory
// beside this file with a package.json, a committed package-lock.json and
// the script node runs; npm ci installs its node_modules the first time a
// server needs it, under a file lock so that test binaries running at once
// install once.

// npmCITimeout bounds one npm ci, and waiting for another process's.
const npmCITimeout = 5 * time.Minute

// nodePackage is one such directory.
type nodePackage struct {
	dir     string            // directory beside this file, e.g. "oidcprovider"
	script  string            // the file node runs, in dir
	pins    map[string]string // package -> the version node_modules must hold
	minNode [2]int            // the oldest node (major, minor) it runs on
}

// prepare finds node (TESTSERVER_NODE names another), checks its
// version, makes the server's temp dir and installs the package (npm ci
// output in the temp dir): what every node server's start needs first.
// On error nothing is left behind.
func (np nodePackage) prepare(name string) (node, dir, script string, err error) {
	if node, err = findBinary("TESTSERVER_NODE", []string{"node", "nodejs"}, "/usr/bin/node"); err != nil {
		return "", "", "", err
	}
	if err = np.checkNode(node); err != nil {
		return "", "", "", err
	}
	if dir, err = makeDir(name, nil); err != nil {
		return "", "", "", err
	}
	if script, err = np.install(node, filepath.Join(dir, "npm-ci.log")); err != nil {
		os.RemoveAll(dir)
		return "", "", "", err
	}
	return node, dir, script, nil
}

// path is the package's directory, found from this source file so that
// tests of any package find it.
func (np nodePackage) path() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("testserver: cannot locate node.go")
	}
	dir := filepath.Join(filepath.Dir(file), np.dir)
	if _, err := os.Stat(filepath.Join(dir, np.script)); err != nil {
		return "", fmt.Errorf("testserver: node script: %w", err)
	}
	return dir, nil
}

// String names the package by its pins, e.g. "oidc-provider 9.13.3".
func (np nodePackage) String() string {
	var names []string
	for name, v := range np.pins {
		names = append(names, name+" "+v)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// checkNode fails with ErrNotInstalled when node is older than np.minNode.
func (np nodePackage) checkNode(node string) error {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return fmt.Errorf("%w: %s --version: %v", ErrNotInstalled, node, err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	f := strings.SplitN(v, ".", 3)
	var major, minor int
	if len(f) >= 2 {
		major, _ = strconv.Atoi(f[0])
		minor, _ = strconv.Atoi(f[1])
	}
	if major < np.minNode[0] || major == np.minNode[0] && minor < np.minNode[1] {
		return fmt.Errorf("%w: %s is node %q; %s needs %d.%d or later", ErrNotInstalled, node, v, np, np.minNode[0], np.minNode[1])
	}
	return nil
}

// installed reports whether npm ci completed in dir with the pinned
// versions.
func (np nodePackage) installed(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		return false
	}
	for name, version := range np.pins {
		data, err := os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json"))
		if err != nil {
			return false
		}
		var pkg struct{ Version string }
		if json.Unmarshal(data, &pkg) != nil || pkg.Version != version {
			return false
		}
	}
	return true
}

// install makes sure node_modules holds the pinned packages, running npm
// ci (output to logPath) under a lock if not, and returns the path of the
// script.
func (np nodePackage) install(node, logPath string) (string, error) {
	dir, err := np.path()
	if err != nil {
		return "", err
	}
	script := filepath.Join(dir, np.script)
	if np.installed(dir) {
		return script, nil
	}
	npm, err := findBinary("TESTSERVER_NPM", []string{"npm"}, "/usr/bin/npm")
	if err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("testserver: npm ci lock: %w", err)
	}
	defer lock.Close()
	if err := lockFile(lock, npmCITimeout+time.Minute); err != nil {
		return "", err
	}
	if np.installed(dir) { // another process installed meanwhile
		return script, nil
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = dir
	// npm needs the user's environment (registry settings, CA
	// certificates, HOME for its cache) and node in PATH.
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"npm_config_update_notifier=false")
	var p proc
	if err := p.start("npm ci", cmd, logPath); err != nil {
		return "", err
	}
	select {
	case <-p.exited:
	case <-time.After(npmCITimeout):
		_ = p.stop()
		return "", fmt.Errorf("testserver: npm ci in %s took more than %v\n%s", dir, npmCITimeout, tail(logPath, 4096))
	}
	if p.waitErr != nil || !np.installed(dir) {
		return "", fmt.Errorf("testserver: npm ci in %s: %v\n%s", dir, p.waitErr, tail(logPath, 4096))
	}
	return script, nil
}

// startScript writes cfg as dir/config.json, empties eventLog, and starts
// "node script config.json" in script's directory as p, its output in
// logFile: how the node servers (oidc-provider, the DPoP resource server,
// s3rver) start.
func (p *proc) startScript(name, node, script, dir string, cfg any, eventLog, logFile string) error {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "config.json")
	if err := os.WriteFile(conf, data, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(eventLog, nil, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(node, script, conf)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = serverEnv()
	return p.start(name, cmd, logFile)
}

// answersWith is a readiness check: GET url answers 200 with the body
// want (a token of this start, so that another server on the port is not
// taken for it).
func answersWith(url, want string) func() error {
	c := &http.Client{Transport: noProxyClient.Transport, Timeout: time.Second}
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return fmt.Errorf("%w: %v", errNotReady, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != want {
			return fmt.Errorf("%w: GET %s: %s %q (another server on the port?)", errNotReady, url, resp.Status, body)
		}
		return nil
	}
}

// diffCounts returns a minus b, key by key, without the zero entries: what
// happened between two snapshots of a server's counters.
func diffCounts(a, b map[string]int) map[string]int {
	d := map[string]int{}
	for k, v := range a {
		if v -= b[k]; v != 0 {
			d[k] = v
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok && v != 0 {
			d[k] = -v
		}
	}
	return d
}
