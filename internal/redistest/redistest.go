// Package redistest starts real redis-server processes for tests, each on a
// free loopback port with its data in the test's temporary directory, and
// stops them when the test ends.
//
// Without redis-server on PATH a test using it is skipped, except in CI
// (the environment variable CI is "true"), where it fails: CI must not pass
// by skipping the tests that need Redis.
package redistest

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
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long a server may take to answer PING.
	startTimeout = 10 * time.Second
	// stopTimeout bounds a graceful stop before the process is killed.
	stopTimeout = 10 * time.Second
	// portAttempts is how many ports Start tries: another process may take
	// a free port between our probe and redis-server's bind.
	portAttempts = 5
)

// Option changes how Start runs redis-server.
type Option func(*config)

type config struct {
	appendOnly bool
	cluster    bool
	args       []string
}

// AppendOnly turns on the append-only file, fsynced on every write, so the
// data survives Stop, Kill and Restart.
func AppendOnly() Option {
	return func(c *config) { c.appendOnly = true }
}

// Args passes further arguments to redis-server, e.g. "--maxmemory", "10mb".
func Args(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// clusterNode starts the server in cluster mode, with its cluster bus port
// (port + 10000, fixed by Redis) free too.
func clusterNode() Option {
	return func(c *config) { c.cluster = true }
}

// Server is one redis-server process. Its methods must be called from the
// test's goroutine, since they may end the test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// Start runs a redis-server for the test and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server")
	var c config
	for _, o := range opts {
		o(&c)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(func() {
		if err := s.stop(syscall.SIGKILL); err != nil {
			t.Errorf("redistest: %v", err)
		}
	})
	var err error
	for range portAttempts {
		if s.port, err = freePort(c.cluster); err != nil {
			break
		}
		s.args = s.arguments(c)
		if err = s.launch(); err == nil {
			return s
		}
	}
	t.Fatalf("redistest: starting redis-server: %v", err)
	return nil
}

func (s *Server) arguments(c config) []string {
	appendOnly := "no"
	if c.appendOnly {
		appendOnly = "yes"
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", appendOnly,
		"--appendfsync", "always",
		"--dir", s.dir,
	}
	if c.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", "5000",
		)
	}
	return append(args, c.args...)
}

// Addr is the server's host:port, on 127.0.0.1.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL is the server's address as a redis:// URL for database 0.
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Stop shuts the server down gracefully (SIGTERM), as an operator would: with
// AppendOnly, everything written so far is on disk.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.stop(syscall.SIGTERM); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.t.Helper()
	if err := s.stop(syscall.SIGKILL); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// Pause stops the process (SIGSTOP) without ending it, as a long fork, a
// swap storm or a stalled VM does: connections stay open and commands
// wait in their sockets until Resume.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("redistest: pausing redis-server: %v", err)
	}
}

// Resume continues a paused process (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("redistest: resuming redis-server: %v", err)
	}
}

// Restart stops the server if it runs and starts it again on the same port
// and directory, so with AppendOnly it comes back with its data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restarting redis-server: %v", err)
	}
}

// launch starts the process and waits until it answers PING.
func (s *Server) launch() error {
	logPath := filepath.Join(s.dir, "redis.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited at start:\n%s", s.port, tail(logPath))
		default:
		}
		if ping(s.Addr()) {
			return nil
		}
		if time.Now().After(deadline) {
			_ = s.stop(syscall.SIGKILL)
			return fmt.Errorf("redis-server on port %d did not answer PING within %v:\n%s", s.port, startTimeout, tail(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop signals the process, if it runs, and waits for it to exit; a
// graceful stop that takes too long ends in SIGKILL.
func (s *Server) stop(sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling redis-server: %w", err)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	return fmt.Errorf("redis-server on port %d ignored %v for %v and was killed", s.port, sig, stopTimeout)
}

// ping reports whether a Redis server at addr answers PING with PONG; one
// still loading its data answers -LOADING instead.
func ping(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// freePort finds a loopback port no one listens on; for a cluster node, the
// bus port 10000 above it must be free too.
func freePort(withBus bool) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !withBus {
			l.Close()
			return port, nil
		}
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		l.Close()
		if err == nil {
			bus.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port with a free cluster bus port")
}

// lookPath finds a Redis binary, or ends the test: skipped on a developer's
// machine, failed in CI.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("redistest: %s is not on PATH, and CI=true requires the tests that need Redis to run: install Redis (e.g. apt-get install redis-server)", name)
	}
	t.Skipf("redistest: %s is not on PATH; skipping a test that needs a real Redis (install redis-server to run it)", name)
	return ""
}

// tail returns the last lines of a log, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}
