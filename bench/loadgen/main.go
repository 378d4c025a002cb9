// Command loadgen is the load driver of the benchmark (bench/run.sh). It
// opens -c keep-alive connections to one loopback URL, one goroutine each
// sending the same request back to back, and after -warmup counts, for
// -d, the requests that complete and those answered with a status other
// than -expect (or not answered). It prints one JSON line:
//
//	{"requests":N,"errors":E,"seconds":S,"rps":R,"statuses":{"200":N},...}
//
// With -pid it also samples that process (Caddy) at the exact edges of the
// measured window: CPU time (utime+stime of /proc/<pid>/stat) and resident
// memory (VmRSS of /proc/<pid>/status, every -rss-every; the peak and the
// last value are reported), so warm-up is never charged to the window. It
// also reports, in cores over the window, the load side's CPU (itself and
// -peer-pids, e.g. the upstream), the whole machine's busy time (/proc/stat)
// and the rest: what other processes took. With -upstream-stats, the PATCH
// and POST requests bench/upstream answered and the connections it
// accepted during the window.
//
// It sends only to 127.0.0.1 (any loopback IP literal): it is a benchmark
// of a local process, never a tool to load someone else's server.
//
// With -sign-secret whsec_..., every request is signed as Standard Webhooks
// says (webhook-id unique per request, webhook-timestamp now,
// webhook-signature over id.timestamp.body), computed here per request.
//
// -free-ports N prints N free loopback TCP ports and exits (for run.sh).
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

type result struct {
	URL        string         `json:"-"`
	Requests   int64          `json:"requests"`
	Errors     int64          `json:"errors"`
	Seconds    float64        `json:"seconds"`
	RPS        float64        `json:"rps"`
	Statuses   map[string]int `json:"statuses"`
	FirstError string         `json:"first_error,omitempty"`
	Conns      int            `json:"conns"`
	// Filled with -pid only.
	PID         int     `json:"pid,omitempty"`
	CPUSeconds  float64 `json:"cpu_seconds,omitempty"`
	CPUUtil     float64 `json:"cpu_util,omitempty"`
	CPUPerReqUS float64 `json:"cpu_us_per_req,omitempty"`
	RSSPeakKiB  int64   `json:"rss_peak_kib,omitempty"`
	RSSEndKiB   int64   `json:"rss_end_kib,omitempty"`
	// The load side's CPU (this process and -peer-pids) and the whole
	// machine's busy time over the window, in cores; OtherCores is what
	// neither the server nor the load side used: the neighbours.
	LoadCores    float64 `json:"load_cores,omitempty"`
	MachineCores float64 `json:"machine_cores,omitempty"`
	OtherCores   float64 `json:"other_cores,omitempty"`
	// Filled with -upstream-stats only: what bench/upstream counted
	// during the window.
	UpstreamRequests    int64   `json:"upstream_requests,omitempty"`
	UpstreamPerRequest  float64 `json:"upstream_per_request,omitempty"`
	UpstreamConnsOpened int64   `json:"upstream_conns_opened,omitempty"`
	UpstreamError       string  `json:"upstream_error,omitempty"`
}

type upstreamStats struct {
	ConnsOpened int64 `json:"conns_opened"`
	Requests    int64 `json:"requests"`
}

type worker struct {
	id       int
	secret   []byte // signs each request when set
	sent     int64
	requests int64
	errors   int64
	statuses map[int]int
	firstErr string
	// keyPrefix, when set, starts a new Idempotency-Key for every request.
	keyPrefix string
	keysSent  int64
}

func main() {
	var (
		target   = flag.String("url", "", "`URL` to load (http://127.0.0.1:port/...)")
		method   = flag.String("method", http.MethodPost, "HTTP `method`")
		bodyFile = flag.String("body", "", "`file` whose content is the request body (none: empty body)")
		ctype    = flag.String("content-type", "application/json", "Content-Type of the body")
		conns    = flag.Int("c", 64, "`connections`, one goroutine each")
		dur      = flag.Duration("d", 5*time.Second, "measured `duration`")
		warmup   = flag.Duration("warmup", time.Second, "warm-up before the measured window (not counted)")
		expect   = flag.Int("expect", http.StatusOK, "expected `status`; any other answer counts as an error")
		timeout  = flag.Duration("timeout", 10*time.Second, "bound on one request")
		pid      = flag.Int("pid", 0, "`pid` of the server to sample (CPU time, VmRSS) at the window's edges")
		upStats  = flag.String("upstream-stats", "", "`URL` of bench/upstream's /stats, read at the window's edges")
		peers    = flag.String("peer-pids", "", "comma-separated `pids` counted with this process as the load side (e.g. the upstream)")
		clkTck   = flag.Int("clk-tck", 100, "clock ticks per second of /proc/<pid>/stat (getconf CLK_TCK)")
		rssEvery = flag.Duration("rss-every", 100*time.Millisecond, "VmRSS sampling period during the window")
		procs    = flag.Int("procs", 0, "GOMAXPROCS (0: leave the runtime's default)")
		free     = flag.Int("free-ports", 0, "print `N` free loopback TCP ports and exit")
		signWith = flag.String("sign-secret", "", "sign every request with this Standard Webhooks `secret` (whsec_...)")
		idemKey  = flag.String("idempotency-key", "", "send a new Idempotency-Key on every request, starting with `prefix`")
	)
	flag.Parse()
	if *free > 0 {
		ports, err := freePorts(*free)
		if err != nil {
			fatal(err)
		}
		fmt.Println(strings.Join(ports, " "))
		return
	}
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	if err := checkLoopback(*target); err != nil {
		fatal(err)
	}
	if *upStats != "" {
		if err := checkLoopback(*upStats); err != nil {
			fatal(fmt.Errorf("-upstream-stats: %w", err))
		}
	}
	if *conns < 1 || *dur <= 0 || *warmup < 0 {
		fatal(errors.New("-c must be at least 1 and -d positive"))
	}
	var body []byte
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			fatal(err)
		}
		body = b
	}

	tr := &http.Transport{
		Proxy:               nil, // never an environment proxy: loopback only
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        *conns,
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	client := &http.Client{
		Transport:     tr,
		Timeout:       *timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	header := http.Header{}
	if body != nil {
		header.Set("Content-Type", *ctype)
	}
	header.Set("User-Agent", "caddy-postback-bench-loadgen")
	var signer []byte
	if *signWith != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(*signWith, "whsec_"))
		if err != nil || !strings.HasPrefix(*signWith, "whsec_") {
			fatal(errors.New("-sign-secret must be whsec_<base64>"))
		}
		signer = key
	}

	start := time.Now()
	measureFrom := start.Add(*warmup)
	measureTo := measureFrom.Add(*dur)

	res := result{URL: *target, Conns: *conns, Statuses: map[string]int{}}
	var sampler sync.WaitGroup
	if *pid > 0 {
		res.PID = *pid
		load := []int{os.Getpid()}
		for f := range strings.SplitSeq(*peers, ",") {
			if f = strings.TrimSpace(f); f != "" {
				p, err := strconv.Atoi(f)
				if err != nil {
					fatal(fmt.Errorf("-peer-pids: %w", err))
				}
				load = append(load, p)
			}
		}
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			sample(&res, *pid, load, *clkTck, *rssEvery, measureFrom, measureTo)
		}()
	}

	if *upStats != "" {
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			sampleUpstream(&res, *upStats, measureFrom, measureTo)
		}()
	}

	workers := make([]*worker, *conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{statuses: map[int]int{}, id: i, secret: signer}
		if *idemKey != "" {
			w.keyPrefix = *idemKey + "-" + strconv.Itoa(i) + "-"
		}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(client, *method, *target, header, body, *expect, measureFrom, measureTo)
		}()
	}
	wg.Wait()
	sampler.Wait()
	tr.CloseIdleConnections()

	for _, w := range workers {
		res.Requests += w.requests
		res.Errors += w.errors
		for s, n := range w.statuses {
			res.Statuses[strconv.Itoa(s)] += n
		}
		if res.FirstError == "" {
			res.FirstError = w.firstErr
		}
	}
	res.Seconds = dur.Seconds()
	res.RPS = float64(res.Requests) / res.Seconds
	if *pid > 0 {
		res.CPUUtil = res.CPUSeconds / res.Seconds
		res.OtherCores = res.MachineCores - res.CPUUtil - res.LoadCores
		if res.Requests > 0 {
			res.CPUPerReqUS = res.CPUSeconds / float64(res.Requests) * 1e6
		}
	}
	if res.Requests > 0 && res.UpstreamRequests > 0 {
		res.UpstreamPerRequest = float64(res.UpstreamRequests) / float64(res.Requests)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

// run sends requests back to back until measureTo; those that complete
// inside [measureFrom, measureTo) are counted.
func (w *worker) run(client *http.Client, method, target string, header http.Header, body []byte, expect int, measureFrom, measureTo time.Time) {
	for {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(context.Background(), method, target, rd)
		if err != nil {
			w.note(time.Now(), measureFrom, 0, err.Error())
			return
		}
		req.Header = header // read-only: the client neither sets nor changes headers here
		if w.secret != nil {
			req.Header = w.sign(header, body)
		}
		if w.keyPrefix != "" {
			w.keysSent++
			req.Header = req.Header.Clone()
			req.Header["Idempotency-Key"] = []string{w.keyPrefix + strconv.FormatInt(w.keysSent, 36)}
		}
		status := 0
		msg := ""
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
			if err != nil {
				status = 0
				msg = "reading the answer: " + err.Error()
			} else if status != expect {
				msg = fmt.Sprintf("status %d, want %d", status, expect)
			}
		} else {
			msg = err.Error()
		}
		now := time.Now()
		if !now.Before(measureTo) {
			return
		}
		w.note(now, measureFrom, status, msg)
		if status == 0 {
			time.Sleep(time.Millisecond) // no answer: do not spin
		}
	}
}

// sign returns header with the Standard Webhooks headers of one request:
// a webhook-id no other request of the run has, the time now, and the
// HMAC-SHA256 of id.timestamp.body under the secret.
func (w *worker) sign(header http.Header, body []byte) http.Header {
	w.sent++
	id := "msg_" + strconv.Itoa(os.Getpid()) + "_" + strconv.Itoa(w.id) + "_" + strconv.FormatInt(w.sent, 10)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, w.secret)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	h := header.Clone()
	h["Webhook-Id"] = []string{id}
	h["Webhook-Timestamp"] = []string{ts}
	h["Webhook-Signature"] = []string{"v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))}
	return h
}

func (w *worker) note(now, measureFrom time.Time, status int, msg string) {
	if now.Before(measureFrom) {
		return
	}
	w.requests++
	w.statuses[status]++
	if msg != "" {
		w.errors++
		if w.firstErr == "" {
			w.firstErr = msg
		}
	}
}

// sample reads, at both edges of the window, the CPU time of the server,
// of the load side and of the whole machine, and the server's VmRSS
// throughout.
func sample(res *result, pid int, load []int, clkTck int, every time.Duration, from, to time.Time) {
	time.Sleep(time.Until(from))
	t0 := time.Now()
	cpu0, err := cpuTicks(pid)
	if err != nil {
		res.FirstError = "sampling pid: " + err.Error()
		return
	}
	load0 := loadTicks(load)
	busy0, _ := machineBusyTicks()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if rss, err := vmRSS(pid); err == nil {
			res.RSSPeakKiB = max(res.RSSPeakKiB, rss)
			res.RSSEndKiB = rss
		}
		d := time.Until(to)
		if d <= 0 {
			break
		}
		select {
		case <-tick.C:
		case <-time.After(d):
		}
	}
	cpu1, err := cpuTicks(pid)
	if err != nil {
		res.FirstError = "sampling pid: " + err.Error()
		return
	}
	load1 := loadTicks(load)
	busy1, _ := machineBusyTicks()
	wall := time.Since(t0).Seconds()
	hz := float64(clkTck)
	res.CPUSeconds = float64(cpu1-cpu0) / hz
	res.LoadCores = float64(load1-load0) / hz / wall
	res.MachineCores = float64(busy1-busy0) / hz / wall
}

// sampleUpstream reads bench/upstream's counters at both edges of the
// window, over one keep-alive connection of its own (so that it adds no
// connection to the count after the first).
func sampleUpstream(res *result, statsURL string, from, to time.Time) {
	c := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Second}
	get := func() (upstreamStats, error) {
		var st upstreamStats
		resp, err := c.Get(statsURL)
		if err != nil {
			return st, err
		}
		defer resp.Body.Close()
		err = json.NewDecoder(resp.Body).Decode(&st)
		_, _ = io.Copy(io.Discard, resp.Body)
		return st, err
	}
	time.Sleep(time.Until(from))
	s0, err0 := get()
	time.Sleep(time.Until(to))
	s1, err1 := get()
	if err0 != nil || err1 != nil {
		res.UpstreamError = fmt.Sprintf("reading %s: %v %v", statsURL, err0, err1)
		return
	}
	res.UpstreamRequests = s1.Requests - s0.Requests
	res.UpstreamConnsOpened = s1.ConnsOpened - s0.ConnsOpened
}

func loadTicks(pids []int) int64 {
	var n int64
	for _, p := range pids {
		t, _ := cpuTicks(p)
		n += t
	}
	return n
}

// machineBusyTicks is the non-idle time of all CPUs from the first line of
// /proc/stat: user, nice, system, irq, softirq and steal (guest time is
// already in user; idle and iowait are not busy).
func machineBusyTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat")
	}
	var n int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, errors.New("unexpected /proc/stat")
		}
		n += v
	}
	return n, nil
}

// cpuTicks is utime+stime of /proc/<pid>/stat, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after the last ')'. There field 3 (state) is index 0,
	// so utime (14) and stime (15) are indexes 11 and 12.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/<pid>/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/<pid>/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc/<pid>/stat")
	}
	return ut + st, nil
}

// vmRSS is VmRSS of /proc/<pid>/status, in KiB.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// checkLoopback refuses any URL that is not http to a loopback IP literal.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return fmt.Errorf("-url must be http://127.0.0.1:<port>/..., got %q", raw)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url must name a loopback IP such as 127.0.0.1, got %q", u.Host)
	}
	return nil
}

func freePorts(n int) ([]string, error) {
	var ports []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(2)
}
