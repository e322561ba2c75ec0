package testserver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Redis is a redis-server (Debian package redis-server) started by
// StartRedis: in-memory only (no RDB snapshot, no AOF), listening on
// 127.0.0.1:Port only, with its working directory in Dir. Stop and Start
// take it down and up again on the same port, for outage tests; the data
// does not survive.
type Redis struct {
	Addr    string // "127.0.0.1:PORT"
	Port    int
	Dir     string // temp dir: working dir and log
	Binary  string
	Startup time.Duration // from exec until PING answered, last Start

	logFile string
	mu      sync.Mutex
	running bool
	proc
	closeOnce sync.Once
	closeErr  error
}

// StartRedis starts redis-server on a free port. The error wraps
// ErrNotInstalled when redis-server is missing; TESTSERVER_REDIS names
// another binary.
func StartRedis() (*Redis, error) {
	bin, err := findBinary("TESTSERVER_REDIS", []string{"redis-server"}, "/usr/bin/redis-server", "/usr/sbin/redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := makeDir("redis", nil)
	if err != nil {
		return nil, err
	}
	r := &Redis{Dir: dir, Binary: bin, logFile: filepath.Join(dir, "redis.log")}
	err = retryOnTakenPort(func(int) (bool, error) {
		port, err := freePort()
		if err != nil {
			return false, err
		}
		r.Port, r.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = r.Start()
		return err != nil && bindFailed(r.Log()), err
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// StartRedisForTest starts a redis-server with StartRedis, closes it when
// the test ends and, if the test failed, logs its log. A redis-server
// that is not installed skips the test, or fails it when InCI.
func StartRedisForTest(t testing.TB) *Redis {
	t.Helper()
	return forTest(t, StartRedis, func(r *Redis) string { return "redis-server log:\n" + r.Log() })
}

// Start starts the server (again) on Port and waits until PING answers.
// It does nothing if the server runs.
func (r *Redis) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return nil
	}
	r.forget()
	cmd := exec.Command(r.Binary, "--save", "", "--appendonly", "no", "--port", strconv.Itoa(r.Port),
		"--bind", "127.0.0.1", "--dir", r.Dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "notice")
	cmd.Dir = r.Dir
	cmd.Env = serverEnv()
	began := time.Now()
	if err := r.start("redis-server", cmd, r.logFile); err != nil {
		return err
	}
	err := r.ready(10*time.Second, func() error {
		if err := ping(r.Addr); err != nil {
			return fmt.Errorf("%w: %v", errNotReady, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testserver: redis-server on %s: %w\n%s", r.Addr, err, r.Log())
	}
	r.Startup = time.Since(began)
	r.running = true
	return nil
}

// Stop stops the server (SIGTERM to its process group); its data is
// gone. Start starts it again.
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		return nil
	}
	r.running = false
	return r.stop()
}

// Log returns what the server wrote on stdout and stderr since it was
// last started.
func (r *Redis) Log() string {
	data, _ := os.ReadFile(r.logFile)
	return string(data)
}

// Close stops the server and removes Dir. It is idempotent and safe to
// call on a nil Redis.
func (r *Redis) Close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		r.closeErr = errors.Join(r.Stop(), os.RemoveAll(r.Dir))
	})
	return r.closeErr
}

// ping sends PING in RESP and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q (another server on the port?)", strings.TrimSpace(line))
	}
	return nil
}
