package redistest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func client(t *testing.T, s *Server) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStartServesOnLoopback(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr = %q, want a 127.0.0.1 address", s.Addr())
	}
	ctx := context.Background()
	c := client(t, s)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v", got, err)
	}
}

func TestRestartKeepsDataWithAppendOnly(t *testing.T) {
	ctx := context.Background()
	for _, stop := range []string{"Stop", "Kill"} {
		t.Run(stop, func(t *testing.T) {
			s := Start(t, AppendOnly())
			c := client(t, s)
			if err := c.Set(ctx, "k", "kept", 0).Err(); err != nil {
				t.Fatal(err)
			}
			addr := s.Addr()
			if stop == "Kill" {
				s.Kill()
			} else {
				s.Stop()
			}
			if err := c.Ping(ctx).Err(); err == nil {
				t.Fatal("PING answered after the server stopped")
			}
			s.Restart()
			if s.Addr() != addr {
				t.Fatalf("restarted on %s, want %s", s.Addr(), addr)
			}
			if got, err := c.Get(ctx, "k").Result(); err != nil || got != "kept" {
				t.Fatalf("GET after restart = %q, %v", got, err)
			}
		})
	}
}

func TestRestartWithoutPersistenceStartsEmpty(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	c := client(t, s)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after restart without persistence = %v, want redis.Nil", err)
	}
}

func TestStartCluster(t *testing.T) {
	ctx := context.Background()
	for _, masters := range []int{1, 3} {
		t.Run(fmt.Sprint(masters, " masters"), func(t *testing.T) {
			addrs := StartCluster(t, masters)
			if len(addrs) != masters {
				t.Fatalf("addresses = %v", addrs)
			}
			for _, a := range addrs {
				if !strings.HasPrefix(a, "127.0.0.1:") {
					t.Fatalf("node address %q is not on 127.0.0.1", a)
				}
			}
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
			t.Cleanup(func() { c.Close() })
			// Enough keys to land on every master.
			for i := range 100 {
				if err := c.Set(ctx, fmt.Sprint("k", i), i, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			var reached atomic.Int32 // ForEachMaster calls back concurrently
			err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
				reached.Add(1)
				if n, err := m.DBSize(ctx).Result(); err != nil || n == 0 {
					return fmt.Errorf("master %s holds %d keys: %v", m.Options().Addr, n, err)
				}
				return nil
			})
			if err != nil || int(reached.Load()) != masters {
				t.Fatalf("ForEachMaster reached %d masters: %v", reached.Load(), err)
			}
		})
	}
}

// fakeTB records how a test ended; like testing.T, Skip and Fatal end the
// goroutine.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingRedisSkipsButFailsInCI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Start(f)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Start did not return")
		}
		if ci == "true" {
			if f.failed == "" || f.skipped != "" || !strings.Contains(f.failed, "redis-server is not on PATH") {
				t.Errorf("CI=true: failed %q, skipped %q; want a failure naming redis-server", f.failed, f.skipped)
			}
		} else if f.skipped == "" || f.failed != "" || !strings.Contains(f.skipped, "redis-server is not on PATH") {
			t.Errorf("CI unset: skipped %q, failed %q; want a skip naming redis-server", f.skipped, f.failed)
		}
	}
}
