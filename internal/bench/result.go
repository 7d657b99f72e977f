package bench

import (
	"fmt"
	"strings"
	"time"
)

// Result is what a run measured. It marshals to the JSON that
// `herald bench --json` prints; field names carry their units.
type Result struct {
	Scenario  Scenario  `json:"scenario"`
	Transport string    `json:"transport"` // "ws" or "tcp"
	Server    string    `json:"server"`
	Publisher string    `json:"publisher,omitempty"` // "client" or "api": how messages were sent
	StartedAt time.Time `json:"started_at"`
	Seconds   float64   `json:"seconds"` // the whole run
	Settings  Settings  `json:"settings"`

	// Endpoints counts the handshakes on each client endpoint, when
	// Server lists several.
	Endpoints []Endpoint `json:"endpoints,omitempty"`

	// Connections counts completed handshakes (successful connect
	// replies) of the Clients requested; the fan-out publisher is not
	// among them.
	Clients        int     `json:"clients"`
	Connections    int64   `json:"connections"`
	ConnectErrors  int64   `json:"connect_errors"`
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnectRate    float64 `json:"connect_rate"` // handshakes per second
	// Dropped counts connections that ended before the load tool closed
	// them.
	Dropped int64 `json:"dropped"`

	// Sent counts messages published or sent successfully; SendErrors the
	// ones that failed; APICalls the server API calls made.
	Sent       int64 `json:"sent"`
	SendErrors int64 `json:"send_errors"`
	APICalls   int64 `json:"api_calls,omitempty"`

	// DeliveriesExpected and DeliveriesReceived must be equal. Missing and
	// Duplicates are summed per client, so a loss on one client and a
	// duplicate on another do not cancel out.
	DeliveriesExpected  int64   `json:"deliveries_expected"`
	DeliveriesReceived  int64   `json:"deliveries_received"`
	Missing             int64   `json:"missing"`
	Duplicates          int64   `json:"duplicates"`
	DeliverySeconds     float64 `json:"delivery_seconds"` // first send to last delivery
	DeliveriesPerSecond float64 `json:"deliveries_per_second"`

	// MeasuredSeconds is the measured phase: first send to last delivery
	// (fanout, direct), the hold (idle), the cycles (churn).
	// LoadCPUSeconds is this load process's CPU time over it: near
	// MeasuredSeconds times the cores, the load tool was the limit.
	MeasuredSeconds float64 `json:"measured_seconds"`
	LoadCPUSeconds  float64 `json:"load_cpu_seconds"`

	Latency  *Latency       `json:"latency,omitempty"`
	Fill     *Fill          `json:"fill,omitempty"`
	Recovery *Recovery      `json:"recovery,omitempty"`
	Memory   *Memory        `json:"memory,omitempty"`
	Churn    *Churn         `json:"churn,omitempty"`
	Stalled  *Stalled       `json:"stalled,omitempty"`
	Attacks  []Attack       `json:"attacks,omitempty"`
	Hooks    *Hooks         `json:"hooks,omitempty"`
	Offline  *Offline       `json:"offline,omitempty"`
	Process  *ServerProcess `json:"server_process,omitempty"`

	// Baseline is the same load against the baseline of a compared run,
	// and VsBaseline this run's deliveries per second over the baseline's.
	Baseline   *Result `json:"baseline,omitempty"`
	VsBaseline float64 `json:"vs_baseline,omitempty"`

	// StatsBefore and StatsAfter are GET /v1/stats around a churn run.
	StatsBefore *ServerStats `json:"server_stats_before,omitempty"`
	StatsAfter  *ServerStats `json:"server_stats_after,omitempty"`

	Errors       map[string]int64 `json:"errors,omitempty"`        // count by kind
	ErrorSamples []string         `json:"error_samples,omitempty"` // the first few in full
	TimedOut     bool             `json:"timed_out"`

	// OK is the verdict; Failures says why it is false.
	OK       bool     `json:"ok"`
	Failures []string `json:"failures,omitempty"`
}

// Endpoint is one of several client endpoints of a run.
type Endpoint struct {
	Server     string `json:"server"`
	Handshakes int64  `json:"handshakes"` // of the clients under test
	// Publisher is set on the endpoint a client publisher was pinned to.
	Publisher bool `json:"publisher,omitempty"`
}

// Stalled is what became of the subscribers that never read (fanout
// --stalled), and what they cost the server's memory.
type Stalled struct {
	Connections int64 `json:"connections"` // subscribed
	// Dropped counts the ones the server closed by the end of the
	// delivery phase.
	Dropped int64 `json:"dropped"`
	// Server memory: resident size before the delivery phase, its peak
	// during it, and after the stalled connections were gone and
	// memory had a few seconds to come back.
	RSSBeforeBytes int64 `json:"rss_before_bytes,omitempty"`
	RSSPeakBytes   int64 `json:"rss_peak_bytes,omitempty"`
	RSSAfterBytes  int64 `json:"rss_after_bytes,omitempty"`
}

// Fill is the phase of recover and inbox that stores the messages the
// clients miss: every call answered means the messages are on disk.
type Fill struct {
	Messages          int64   `json:"messages"` // stored (per recipient)
	Failed            int64   `json:"failed"`
	Seconds           float64 `json:"seconds"`
	MessagesPerSecond float64 `json:"messages_per_second"`
	// Server CPU time over the fill, when the server process is known.
	CPUSeconds                   float64 `json:"cpu_seconds,omitempty"`
	CPUSecondsPerMillionMessages float64 `json:"cpu_seconds_per_million_messages,omitempty"`
}

// Recovery is how the clients that were away got what they missed:
// channel messages recovered on subscribe (recover), or pending inbox
// messages on connect (inbox).
type Recovery struct {
	Clients  int64 `json:"clients"`  // that came back
	Complete int64 `json:"complete"` // got every message they missed
	// Refused counts subscribe replies with recovered: false (recover),
	// or connect replies whose pending count is not what was sent
	// (inbox).
	Refused int64 `json:"refused"`
	// Seconds runs from the first subscribe (recover) or dial (inbox) to
	// the last message recovered.
	Seconds           float64 `json:"seconds"`
	MessagesPerSecond float64 `json:"messages_per_second"`
	// Time is, per client, from its subscribe (recover) or dial (inbox)
	// to its last message.
	Time *Latency `json:"time,omitempty"`
}

// Memory is the server's memory before and after the inbox fill, each
// read after the server's memory settled.
type Memory struct {
	RSSEmptyBytes  int64 `json:"rss_empty_bytes"`
	RSSFilledBytes int64 `json:"rss_filled_bytes"`
	// Go heap in use, from the server's /metrics, when it tells.
	HeapEmptyBytes  int64 `json:"heap_empty_bytes,omitempty"`
	HeapFilledBytes int64 `json:"heap_filled_bytes,omitempty"`
	// Pending is the messages stored meanwhile, and RSSPerMessageBytes
	// the growth of the resident size per message.
	Pending            int64   `json:"pending"`
	RSSPerMessageBytes float64 `json:"rss_per_message_bytes"`
	// GC reports whether a garbage collection ran before each reading
	// (it needs the server's profiler, --pprof).
	GC            bool    `json:"gc"`
	SettleSeconds float64 `json:"settle_seconds"`
}

// Settings are the options that shaped the run.
type Settings struct {
	ConnectRate    float64 `json:"connect_rate"`
	Concurrency    int     `json:"concurrency"`
	HoldSeconds    float64 `json:"hold_seconds,omitempty"`
	Messages       int     `json:"messages,omitempty"`
	PayloadBytes   int     `json:"payload_bytes,omitempty"`
	Rate           float64 `json:"rate,omitempty"`
	Batch          int     `json:"batch,omitempty"`
	APIConcurrency int     `json:"api_concurrency,omitempty"`
	Cycles         int     `json:"cycles,omitempty"`
	Rounds         int     `json:"rounds,omitempty"`
	Publishers     int     `json:"publishers,omitempty"`
	Channel        string  `json:"channel,omitempty"`
	SourceIPs      int     `json:"source_ips"`
	Auth           string  `json:"auth"` // "insecure" or "jwt"
}

// Latency summarises end-to-end delivery latency: receive time minus the
// send stamp the sender put in the payload.
type Latency struct {
	Count     uint64  `json:"count"`
	MinMs     float64 `json:"min_ms"`
	MeanMs    float64 `json:"mean_ms"`
	P50Ms     float64 `json:"p50_ms"`
	P90Ms     float64 `json:"p90_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
	Histogram []Bin   `json:"histogram,omitempty"`
}

// latencyBinsPerDecade is the chart resolution: bins per factor of ten.
const latencyBinsPerDecade = 10

// summarize turns a snapshot into a Latency, nil when it is empty.
func summarize(s Snapshot) *Latency {
	if s.Count == 0 {
		return nil
	}
	return &Latency{
		Count:     s.Count,
		MinMs:     ms(s.Min),
		MeanMs:    ms(s.Mean()),
		P50Ms:     ms(s.Quantile(0.50)),
		P90Ms:     ms(s.Quantile(0.90)),
		P99Ms:     ms(s.Quantile(0.99)),
		P999Ms:    ms(s.Quantile(0.999)),
		MaxMs:     ms(s.Max),
		Histogram: s.Bins(latencyBinsPerDecade),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Churn is the outcome of the churn scenario.
type Churn struct {
	Cycles          int     `json:"cycles"`
	Completed       int64   `json:"completed"`
	Failed          int64   `json:"failed"`
	Seconds         float64 `json:"seconds"`
	CyclesPerSecond float64 `json:"cycles_per_second"`
}

// ServerProcess is what /proc showed of the server process, or of the
// server's processes (several nodes, and the Redis they share, say):
// then PIDs names them, the figures are their sums, and Processes gives
// each one's.
type ServerProcess struct {
	PID        int   `json:"pid,omitempty"`
	PIDs       []int `json:"pids,omitempty"`
	ClockTicks int64 `json:"clock_ticks"` // per second, of /proc/PID/stat times

	// CPUSeconds is user+system time during the measured phase: publishing
	// to last delivery (fanout, direct), the hold (idle), the cycles
	// (churn). ConnectCPUSeconds is the connect phase's.
	CPUSeconds                     float64 `json:"cpu_seconds"`
	ConnectCPUSeconds              float64 `json:"connect_cpu_seconds"`
	CPUSecondsPerMillionDeliveries float64 `json:"cpu_seconds_per_million_deliveries,omitempty"`

	// RSS before and after connecting (after the cycles, for churn).
	RSSBeforeBytes        int64   `json:"rss_before_bytes"`
	RSSAfterBytes         int64   `json:"rss_after_bytes"`
	RSSPerConnectionBytes float64 `json:"rss_per_connection_bytes,omitempty"`

	ThreadsBefore int `json:"threads_before"`
	ThreadsAfter  int `json:"threads_after"`
	// Goroutine counts, when the server exposes /debug/pprof.
	GoroutinesBefore *int `json:"goroutines_before,omitempty"`
	GoroutinesAfter  *int `json:"goroutines_after,omitempty"`

	// Processes is each process's figures, when there are several.
	Processes []ServerProcess `json:"processes,omitempty"`
}

// newServerProcess returns the figures of the processes pids, empty.
func newServerProcess(pids []int, clockTicks int64) *ServerProcess {
	if len(pids) == 1 {
		return &ServerProcess{PID: pids[0], ClockTicks: clockTicks}
	}
	p := &ServerProcess{PIDs: pids, ClockTicks: clockTicks}
	for _, pid := range pids {
		p.Processes = append(p.Processes, ServerProcess{PID: pid, ClockTicks: clockTicks})
	}
	return p
}

// record calls fn with the summed figures and the summed samples, then,
// when there are several processes, with each one's.
func (p *ServerProcess) record(before, after procSample, fn func(q *ServerProcess, before, after procSample)) {
	fn(p, before, after)
	for i := range p.Processes {
		if i < len(before.each) && i < len(after.each) {
			fn(&p.Processes[i], before.each[i], after.each[i])
		}
	}
}

// recordMemory records resident size and threads before and after a
// phase.
func (p *ServerProcess) recordMemory(before, after procSample) {
	p.record(before, after, func(q *ServerProcess, before, after procSample) {
		q.RSSBeforeBytes, q.RSSAfterBytes = before.RSSBytes, after.RSSBytes
		q.ThreadsBefore, q.ThreadsAfter = before.Threads, after.Threads
	})
}

// recordDeliveries sets CPU time per million deliveries, summed and per
// process.
func (p *ServerProcess) recordDeliveries(deliveries int64) {
	if deliveries <= 0 {
		return
	}
	millions := float64(deliveries) / 1e6
	p.CPUSecondsPerMillionDeliveries = p.CPUSeconds / millions
	for i := range p.Processes {
		q := &p.Processes[i]
		q.CPUSecondsPerMillionDeliveries = q.CPUSeconds / millions
	}
}

// fail records a reason the run is not OK.
func (r *Result) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// Check returns nil for a run that did everything it was asked, else an
// error wrapping ErrIncomplete that lists why.
func (r *Result) Check() error {
	if r.OK {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrIncomplete, strings.Join(r.Failures, "; "))
}

// Hooks is what the run's hook receiver got: posts, and events by type.
type Hooks struct {
	Addr    string           `json:"addr"`
	DelayMs float64          `json:"delay_ms"` // each post answered after it
	Posts   int64            `json:"posts"`
	Events  map[string]int64 `json:"events"`
}

// Offline is what the offline scenario measured, in seconds from the
// first connection closed.
type Offline struct {
	Users        int64   `json:"users"`         // disconnected at once
	CloseSeconds float64 `json:"close_seconds"` // to close them all
	Events       int64   `json:"events"`        // user.offline received
	Posts        int64   `json:"posts"`         // that carried them
	FirstSeconds float64 `json:"first_seconds"` // to the first user.offline
	LastSeconds  float64 `json:"last_seconds"`  // to the last
}
