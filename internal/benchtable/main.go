// Command benchtable runs the benchmarks of anyauth and its schemes in
// interleaved rounds and prints one table of ratios: anyauth against
// icholy/digest and against the bare transport, allocations added, round
// trips per request, heap growth of a large replayed upload, throughput
// from 1 to 64 goroutines and lock contention. It is what make bench
// runs, from the module's root:
//
//	go run ./internal/benchtable [-rounds 7] [-benchtime 400ms] [-v]
//
// Each round runs every benchmark of a comparison (A, then B, ...) in its
// own process, in reverse order every other round, so that noise on a
// shared machine falls on both sides alike; figures are medians over the
// rounds, ratios are medians of the per-round ratios.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

var (
	rounds    = flag.Int("rounds", 7, "rounds of every comparison")
	benchtime = flag.String("benchtime", "400ms", "-test.benchtime of each timed benchmark")
	verbose   = flag.Bool("v", false, "print every benchmark line as it comes")
)

// A bench is one benchmark of one test binary, named as -test.bench
// prints it (without the -GOMAXPROCS suffix).
type bench struct {
	bin  string // "root" or "schemes"
	name string // BenchmarkX/sub/...
	time string // -test.benchtime; "" means *benchtime
}

// results holds, for each benchmark, one map of unit to value per round.
var results = map[string][]map[string]float64{}

var bins = map[string]string{} // "root", "schemes" → test binary

var procs = runtime.GOMAXPROCS(0)

func main() {
	flag.Parse()
	log := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	start := time.Now()
	dir, err := os.MkdirTemp("", "benchtable")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	for name, pkg := range map[string]string{"root": ".", "schemes": "./schemes"} {
		bins[name] = filepath.Join(dir, name+".test")
		log("benchtable: building %s tests", pkg)
		if out, err := exec.Command("go", "test", "-c", "-o", bins[name], pkg).CombinedOutput(); err != nil {
			fatal(fmt.Errorf("go test -c %s: %v\n%s", pkg, err, out))
		}
	}

	sub := func(bin, parent string, subs ...string) []bench {
		var bs []bench
		for _, s := range subs {
			bs = append(bs, bench{bin: bin, name: parent + "/" + s})
		}
		return bs
	}
	groups := [][]bench{
		sub("root", "BenchmarkParseDigestChallenge", "anyauth", "icholy"),
		{{bin: "schemes", name: "BenchmarkDigestAuthorize"}, {bin: "schemes", name: "BenchmarkDigestAuthorizeIcholy"}},
		sub("root", "BenchmarkCachedRequest", "bare-basic", "anyauth-basic", "bare-digest", "anyauth-digest", "icholy-digest"),
		sub("root", "BenchmarkCachedInMemory", "base", "bare-basic", "anyauth-basic", "bare-digest", "anyauth-digest", "icholy-digest", "bare-bearer", "anyauth-bearer", "anyauth-bearer-redis"),
		sub("root", "BenchmarkConnectionBound", "bare", "anyauth-bound"),
	}
	for _, g := range goroutineCounts {
		groups = append(groups, sub("root", "BenchmarkDigestParallel", "bare/g="+g, "anyauth/g="+g))
	}
	// Counted, not timed: once a round each.
	groups = append(groups,
		[]bench{{bin: "root", name: "BenchmarkRoundTrips", time: "1x"}},
		[]bench{{bin: "root", name: "BenchmarkUpload1GiB", time: "1x"}},
	)

	for r := range *rounds {
		log("benchtable: round %d of %d (%s)", r+1, *rounds, time.Since(start).Round(time.Second))
		for _, g := range groups {
			order := slices.Clone(g)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, b := range order {
				run(b, r)
			}
		}
	}
	log("benchtable: mutex profile of anyauth Digest from 64 goroutines")
	mutexProfile := filepath.Join(dir, "mutex.out")
	run(bench{bin: "root", name: "BenchmarkDigestParallel/anyauth/g=64"}, -1, "-test.mutexprofile="+mutexProfile)
	contention := readMutexProfile(bins["root"], mutexProfile)

	printTable(contention)
	fmt.Printf("\n%d rounds, -benchtime=%s, GOMAXPROCS=%d, %s, load average %s; took %s\n",
		*rounds, *benchtime, procs, runtime.Version(), loadAverage(), time.Since(start).Round(time.Second))
}

var goroutineCounts = []string{"1", "4", "16", "64"}

// pattern turns a benchmark name into an anchored -test.bench pattern.
func pattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

var line = regexp.MustCompile(`^(Benchmark\S+)\s+(\d+)\s+(.*)$`)

// run runs one benchmark in its own process and records what it
// reports as round r (not at all when r < 0).
func run(b bench, r int, extra ...string) {
	bt := b.time
	if bt == "" {
		bt = *benchtime
	}
	args := append([]string{"-test.run=^$", "-test.bench=" + pattern(b.name), "-test.benchtime=" + bt,
		"-test.benchmem", "-test.cpu=" + strconv.Itoa(procs)}, extra...)
	cmd := exec.Command(bins[b.bin], args...)
	if b.bin == "schemes" {
		cmd.Dir = "schemes" // tests may read testdata relative to their package
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		fatal(fmt.Errorf("%s %s: %v\n%s", b.bin, strings.Join(args, " "), err, out))
	}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if *verbose {
			fmt.Fprintln(os.Stderr, sc.Text())
		}
		name := m[1]
		if procs > 1 {
			name = strings.TrimSuffix(name, "-"+strconv.Itoa(procs))
		}
		f := strings.Fields(m[3])
		vals := map[string]float64{"iterations": atof(m[2])}
		for i := 0; i+1 < len(f); i += 2 {
			vals[f[i+1]] = atof(f[i])
		}
		if name == b.name || strings.HasPrefix(name, b.name+"/") {
			found = true
		}
		if r >= 0 {
			results[name] = append(results[name], vals)
		}
	}
	if !found {
		fatal(fmt.Errorf("%s: no result for %s in\n%s", b.bin, b.name, out))
	}
}

func atof(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchtable:", err)
	os.Exit(1)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// med is the median over rounds of benchmark name's unit.
func med(name, unit string) float64 {
	var v []float64
	for _, r := range results[name] {
		if x, ok := r[unit]; ok {
			v = append(v, x)
		}
	}
	return median(v)
}

// ratio is the median over rounds of num's unit divided by den's, the
// two measured in the same round.
func ratio(num, den, unit string) float64 {
	a, b := results[num], results[den]
	var v []float64
	for i := range min(len(a), len(b)) {
		v = append(v, a[i][unit]/b[i][unit])
	}
	return median(v)
}

// ns formats nanoseconds with a unit that fits.
func ns(v float64) string {
	switch {
	case math.IsNaN(v):
		return "?"
	case v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1f µs", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2f µs", v/1e3)
	}
	return fmt.Sprintf("%.0f ns", v)
}

// cost is "ns/op, allocs" of a benchmark.
func cost(name string) string {
	return fmt.Sprintf("%s, %s allocs", ns(med(name, "ns/op")), num(med(name, "allocs/op")))
}

func num(v float64) string {
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func signed(v float64) string {
	if v >= 0 {
		return "+" + num(v)
	}
	return num(v)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// speed says how many times faster a is than b, from b's time over a's.
func speed(r float64) string {
	if r >= 1 {
		return fmt.Sprintf("%.2fx faster", r)
	}
	return fmt.Sprintf("%.2fx (slower)", r)
}

// rate formats requests per second.
func rate(nsPerOp float64) string { return fmt.Sprintf("%.1fk req/s", 1e6/nsPerOp) }

func printTable(contention mutexSummary) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(w, strings.Join(cells, "\t")+"\t") }
	row("measure", "anyauth", "reference", "ratio", "target")
	row("-------", "-------", "---------", "-----", "------")

	// Parsing and computing an answer.
	p, pi := "BenchmarkParseDigestChallenge/anyauth", "BenchmarkParseDigestChallenge/icholy"
	pr := ratio(pi, p, "ns/op")
	row("parse RFC 7616 SHA-256 challenge", cost(p), "icholy: "+cost(pi), speed(pr),
		fmt.Sprintf("≥10x, ≤4 allocs: %s", verdict(pr >= 10 && med(p, "allocs/op") <= 4)))
	a, ai := "BenchmarkDigestAuthorize", "BenchmarkDigestAuthorizeIcholy"
	row("Digest answer (SHA-256, auth)", cost(a), "icholy: "+cost(ai), speed(ratio(ai, a, "ns/op")), "")

	// Loopback cached requests.
	lb := func(s string) string { return "BenchmarkCachedRequest/" + s }
	for _, s := range []string{"Basic", "Digest"} {
		ours, bare := lb("anyauth-"+strings.ToLower(s)), lb("bare-"+strings.ToLower(s))
		r := ratio(bare, ours, "ns/op")
		added := med(ours, "allocs/op") - med(bare, "allocs/op")
		target := ""
		if s == "Digest" {
			target = fmt.Sprintf("≥0.95 of bare, ≤4 allocs added: %s", verdict(r >= 0.95 && added <= 4))
		}
		row("loopback cached "+s+" GET", cost(ours), "bare: "+cost(bare), fmt.Sprintf("%.3f of bare, %s allocs", r, signed(added)), target)
	}
	row("loopback cached Digest, vs icholy", cost(lb("anyauth-digest")), "icholy: "+cost(lb("icholy-digest")),
		speed(ratio(lb("icholy-digest"), lb("anyauth-digest"), "ns/op")), "")

	// In memory: what the Transport itself adds.
	im := func(s string) string { return "BenchmarkCachedInMemory/" + s }
	var added []string
	for _, s := range []string{"Basic", "Digest", "Bearer"} {
		ours, bare := im("anyauth-"+strings.ToLower(s)), im("bare-"+strings.ToLower(s))
		n := med(ours, "allocs/op") - med(bare, "allocs/op")
		added = append(added, s+" "+signed(n))
		target := ""
		if s == "Digest" {
			target = fmt.Sprintf("≤4 allocs added: %s", verdict(n <= 4))
		}
		row("in-memory cached "+s, cost(ours), "bare: "+cost(bare),
			fmt.Sprintf("adds %s, %s allocs", ns(median(diffs(ours, bare, "ns/op"))), signed(n)), target)
	}
	{
		ours, mem := im("anyauth-bearer-redis"), im("anyauth-bearer")
		n := med(ours, "allocs/op") - med(mem, "allocs/op")
		d := median(diffs(ours, mem, "ns/op"))
		row("in-memory cached Bearer on Redis (token held)", cost(ours), "in-memory Bearer: "+cost(mem),
			fmt.Sprintf("adds %s, %s allocs", ns(d), signed(n)), fmt.Sprintf("≤50 ns, ≤1 alloc added: %s", verdict(d <= 50 && n <= 1)))
	}
	row("in-memory cached Digest, vs icholy", cost(im("anyauth-digest")), "icholy: "+cost(im("icholy-digest")),
		speed(ratio(im("icholy-digest"), im("anyauth-digest"), "ns/op")), "")
	row("allocs added per cached request", strings.Join(added, ", "), "Base alone: "+cost(im("base")), "", "")

	// A request on a pooled connection that a connection-bound scheme
	// (NTLM) authenticated.
	cb, cbBare := "BenchmarkConnectionBound/anyauth-bound", "BenchmarkConnectionBound/bare"
	row("loopback request on an authenticated connection (NTLM-like)", cost(cb), "bare: "+cost(cbBare),
		fmt.Sprintf("%.3f of bare, %s allocs, %.3f trips/req", ratio(cbBare, cb, "ns/op"), signed(med(cb, "allocs/op")-med(cbBare, "allocs/op")), med(cb, "roundtrips/req")), "")

	// Round trips.
	rt := func(s string) string { return "BenchmarkRoundTrips/" + s }
	for _, c := range []struct{ name, label, want string }{
		{"sequential", "round trips: 100 GETs in a row", "ideal N+1 = 101"},
		{"3dirs", "round trips: 100 GETs, 3 dirs", "ideal N+3 = 103"},
		{"64x10", "round trips: 64 cold goroutines x10", "ideal N+64 = 704"},
		{"2ids", "round trips: 100 GETs, 2 users in turn", "ideal N+2 = 102"},
	} {
		d, b := rt("digest/"+c.name), rt("basic/"+c.name)
		row(c.label, fmt.Sprintf("Digest %s, Basic %s", num(med(d, "roundtrips")), num(med(b, "roundtrips"))),
			c.want, fmt.Sprintf("%.3f, %.3f per request", med(d, "roundtrips/req"), med(b, "roundtrips/req")), "")
	}

	// Upload.
	u := "BenchmarkUpload1GiB"
	row("1 GiB PUT replayed after 401", fmt.Sprintf("heap grew ≤%.2f MiB", med(u, "MiB-peak-heap-growth")),
		fmt.Sprintf("%.2f MiB allocated in all", med(u, "MiB-allocated")),
		fmt.Sprintf("%.1e of the body", med(u, "MiB-peak-heap-growth")/1024), "")

	// Throughput on one Digest space.
	par := func(who, g string) string { return "BenchmarkDigestParallel/" + who + "/g=" + g }
	for _, g := range goroutineCounts {
		ours, bare := par("anyauth", g), par("bare", g)
		row("Digest from "+g+" goroutine(s), 1 space",
			fmt.Sprintf("%s, %s in flight, %.3f trips/req", rate(med(ours, "ns/op")), num(med(ours, "max-inflight")), med(ours, "roundtrips/req")),
			fmt.Sprintf("bare: %s, %s in flight", rate(med(bare, "ns/op")), num(med(bare, "max-inflight"))),
			fmt.Sprintf("%.3f of bare; %.2fx of g=1", ratio(bare, ours, "ns/op"), ratio(par("anyauth", "1"), ours, "ns/op")), "")
	}
	perReq := math.NaN()
	if n := atof(contention.ops); n > 0 {
		perReq = contention.ours / n * 1e9
	}
	row("mutex wait, anyauth, 64 goroutines", fmt.Sprintf("%s at anyauth's locks (%s/req)", ms(contention.ours), ns(perReq)),
		fmt.Sprintf("%s in all, %s requests", ms(contention.total), contention.ops),
		fmt.Sprintf("%.1f%% of all", 100*contention.ours/math.Max(contention.total, 1e-12)), "no lock held across a round trip")
	w.Flush()

	fmt.Printf("\nTop of the mutex profile of that run (go tool pprof -traces, wait summed by the function that held the lock):\n")
	for _, h := range contention.top {
		fmt.Printf("  %10s  %s\n", ms(h.delay), h.fn)
	}
}

// diffs are the per-round differences a-b of unit.
func diffs(a, b, unit string) []float64 {
	ra, rb := results[a], results[b]
	var v []float64
	for i := range min(len(ra), len(rb)) {
		v = append(v, ra[i][unit]-rb[i][unit])
	}
	return v
}

func ms(seconds float64) string { return fmt.Sprintf("%.2f ms", seconds*1e3) }

type holder struct {
	fn    string
	delay float64 // seconds
}

type mutexSummary struct {
	total, ours float64 // seconds of contention
	ops         string
	top         []holder
}

// readMutexProfile sums the contention of a mutex profile by the function
// that held the lock (the first frame below sync and runtime unlocking),
// and how much of it is at locks of anyauth's own packages.
func readMutexProfile(bin, profile string) mutexSummary {
	var s mutexSummary
	if r := results["BenchmarkDigestParallel/anyauth/g=64"]; len(r) > 0 {
		s.ops = num(r[len(r)-1]["iterations"])
	}
	out, err := exec.Command("go", "tool", "pprof", "-traces", bin, profile).CombinedOutput()
	if err != nil {
		fatal(fmt.Errorf("go tool pprof -traces: %v\n%s", err, out))
	}
	byFn := map[string]float64{}
	var delay float64
	var leaf string // the sample's first frame: the unlock that recorded it
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "-----------+") {
			delay, leaf = 0, ""
			continue
		}
		f := strings.Fields(strings.TrimSuffix(l, " (inline)"))
		if len(f) == 0 {
			continue
		}
		fn := f[len(f)-1]
		if len(f) == 2 && !strings.HasPrefix(l, "           ") {
			// "     1.23ms   sync.(*Mutex).Unlock": a new sample's delay.
			d, ok := parseDuration(f[0])
			if !ok {
				continue
			}
			delay, leaf = d, fn
			s.total += d
			continue
		}
		if delay == 0 || strings.HasPrefix(fn, "sync.") || strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/sync.") {
			continue
		}
		// fn is the first frame below the unlock: the lock's holder, or,
		// for a lock inside the runtime, whatever was running then.
		if strings.HasPrefix(leaf, "runtime.") {
			byFn["runtime-internal lock"] += delay
		} else {
			byFn[fn] += delay
			if (strings.HasPrefix(fn, "github.com/anyauth/anyauth.") || strings.HasPrefix(fn, "github.com/anyauth/anyauth/schemes.")) &&
				!strings.Contains(fn, "_test.") {
				s.ours += delay
			}
		}
		delay = 0
	}
	for fn, d := range byFn {
		s.top = append(s.top, holder{fn, d})
	}
	slices.SortFunc(s.top, func(a, b holder) int { return -cmpFloat(a.delay, b.delay) })
	if len(s.top) > 6 {
		s.top = s.top[:6]
	}
	return s
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseDuration reads pprof's "1.23ms", "4.5us", "2s", "120ns".
func parseDuration(s string) (float64, bool) {
	d, err := time.ParseDuration(strings.ReplaceAll(s, "µ", "u"))
	if err != nil {
		return 0, false
	}
	return d.Seconds(), true
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
