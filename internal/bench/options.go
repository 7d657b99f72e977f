package bench

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
)

// Scenario names a benchmark.
type Scenario string

// The scenarios Run knows.
const (
	// ScenarioIdle connects Clients clients, each subscribed to its
	// personal channel user:<user>, and holds them for Hold.
	ScenarioIdle Scenario = "idle"
	// ScenarioFanout subscribes Clients clients to one channel and
	// publishes Messages messages to it; each subscriber must receive each.
	ScenarioFanout Scenario = "fanout"
	// ScenarioDirect connects Clients users and sends each of them Messages
	// direct messages through the server API, Batch recipients per call.
	ScenarioDirect Scenario = "direct"
	// ScenarioChurn runs Cycles connect/subscribe/disconnect cycles,
	// Concurrency at a time, while a publisher publishes on the channel.
	ScenarioChurn Scenario = "churn"
	// ScenarioAbuse plays hostile and careless clients against the HTTP
	// listener one after the other (oversized and unauthenticated
	// uploads, endless headers, bad WebSocket frames, ping floods, idle
	// connections, Connection: close requests) and reads the server's
	// memory around each.
	ScenarioAbuse Scenario = "abuse"
	// ScenarioRecover measures channel recovery: Clients clients subscribe
	// to Channel (in a namespace with history) and leave, Messages
	// messages are published to it, and the clients subscribe again from
	// the position they had: each must recover every message it missed.
	ScenarioRecover Scenario = "recover"
	// ScenarioInbox measures offline inboxes: Messages direct messages are
	// sent to each of Clients users while none is connected (Batch
	// recipients per call), the server's memory is read, then Online of
	// the users connect with a device: each must receive all its pending
	// messages, and acknowledges them.
	ScenarioInbox Scenario = "inbox"
	// ScenarioOffline measures presence events: Clients users connect,
	// then all disconnect at once; the hook receiver (HookReceiver, the
	// server's events webhook) must get every user.offline.
	ScenarioOffline Scenario = "offline"
)

// Scenarios lists every scenario, in the order help text shows them.
var Scenarios = []Scenario{ScenarioIdle, ScenarioFanout, ScenarioDirect, ScenarioChurn, ScenarioAbuse, ScenarioRecover, ScenarioInbox, ScenarioOffline}

// How a fan-out publisher reaches the server.
const (
	// ViaClient publishes with the protocol's publish op from one client
	// connection.
	ViaClient = "client"
	// ViaAPI publishes with POST /v1/publish.
	ViaAPI = "api"
)

// Options configures one run. DefaultOptions gives the values the command
// line starts from; zero values of optional fields are filled in by Run.
type Options struct {
	Scenario Scenario

	// Server is the client endpoint: ws://host:port/path (or wss://) for
	// WebSocket, tcp://host:port for raw TCP; or a comma-separated list of
	// them, the nodes of a cluster, which the clients are spread over
	// round-robin (client n on endpoint n mod the endpoints).
	Server string
	// API is the base URL of the HTTP server API, or a comma-separated
	// list of them, which API calls go to round-robin; APIKey is its
	// bearer key (empty: no Authorization header).
	API    string
	APIKey string
	// PublishOn, when not 0, pins the publisher to one endpoint, counted
	// from 1: a client publisher connects to that --server endpoint, API
	// calls that publish or send go to that --api URL, and no client under
	// test connects to that --server endpoint (unless it is the only one).
	PublishOn int
	// AllowRemote permits targets outside the loopback range.
	AllowRemote bool

	// Clients is the number of connections (subscribers, users) to hold.
	Clients int
	// ConnectRate is new connections per second; 0 dials as fast as
	// Concurrency allows.
	ConnectRate float64
	// Concurrency bounds dials (and churn cycles) in flight.
	Concurrency int
	// ConnectTimeout bounds one dial plus handshake.
	ConnectTimeout time.Duration

	// InsecureUsers connects with {"op":"connect","user":...}, which only a
	// server in insecure mode accepts. HMACSecret, when set, takes
	// precedence: each client connects with an HS256 token minted for it.
	InsecureUsers bool
	HMACSecret    string
	// UserPrefix starts every generated user id: <prefix><n>.
	UserPrefix string
	// Channel is the fan-out and churn channel.
	Channel string

	// SourceIPs is a range ("127.0.0.1-127.0.0.9") or comma-separated list
	// of local addresses to spread connections over; empty picks
	// automatically (more addresses only when one could run out of ports).
	SourceIPs string

	// ServerPIDs, when not empty, are the server's process ids on this
	// machine (several nodes, and the Redis they share, say): their CPU
	// time and memory are read from /proc and summed.
	ServerPIDs []int

	// Hold is how long the idle scenario holds its connections.
	Hold time.Duration
	// Messages is how many messages fan-out publishes, or how many each
	// user receives in the direct scenario.
	Messages int
	// Size is the payload size in bytes (the JSON value in "data").
	Size int
	// Rate is messages per second for fan-out and churn publishers, API
	// calls per second for direct; 0 means as fast as possible (churn
	// then uses DefaultChurnRate).
	Rate float64
	// Via is ViaClient or ViaAPI: how the fan-out publisher publishes.
	Via string
	// Publishers is how many client publishers (Via client) publish at
	// once, each on its own connection, each with its share of Messages.
	Publishers int
	// PublishBatch is messages per POST /v1/publish call with Via api
	// (1: the single form; more: the batch form).
	PublishBatch int
	// Batch is recipients per POST /v1/send call in the direct scenario;
	// 1 uses the single-recipient form.
	Batch int
	// APIConcurrency bounds server API calls in flight.
	APIConcurrency int
	// Window bounds publishes awaiting their reply on the publisher
	// connection.
	Window int
	// Cycles is the number of churn cycles.
	Cycles int
	// Stalled adds, in the fanout scenario, this many subscribers that
	// never read (with small receive buffers): the server must drop them
	// as slow consumers without dropping, or delaying out of their bound,
	// any subscriber that reads.
	Stalled int

	// Rounds splits the messages of fanout and direct into this many
	// measured rounds; with a baseline, the rounds alternate between the
	// target and the baseline. 0: one round, or four with a baseline.
	Rounds int
	// BaselineServer, BaselineAPI, BaselinePIDs and BaselineChannel name a
	// baseline that fanout and direct run the same load against, in
	// alternating rounds, to compare in one run: another server (one
	// started with --inbox-ttl 0, say), or, on the same server, another
	// channel (one without history). Empty fields are the target's.
	BaselineServer  string
	BaselineAPI     string
	BaselinePIDs    []int
	BaselineChannel string
	// Online is how many of the inbox scenario's users come online after
	// the fill; negative: all of them.
	Online int
	// Settle is how long the inbox scenario lets the server's memory
	// settle (after a garbage collection, when the server's profiler is
	// enabled) before each reading.
	Settle time.Duration

	// HookReceiver, when set, is a loopback address the run serves an
	// events webhook backend on, for the server's --events-webhook: it
	// answers each post after HookDelay and reports the events it got.
	// The offline scenario needs it.
	HookReceiver string
	HookDelay    time.Duration
	// hookListener, when set, is the receiver's listener (tests).
	hookListener net.Listener

	// Drain is how long to wait for outstanding deliveries (or hook
	// events) when none arrive, before giving up on the rest.
	Drain time.Duration
	// Timeout bounds the whole run.
	Timeout time.Duration
}

// Defaults used by DefaultOptions and Run.
const (
	DefaultServer        = "ws://127.0.0.1:7600/ws"
	DefaultAPI           = "http://127.0.0.1:7600"
	DefaultChannel       = "bench:fanout"
	DefaultUserPrefix    = "b"
	DefaultSize          = 200
	DefaultChurnRate     = 10
	maxBatch             = 10000 // recipients per POST /v1/send, fixed by the API
	publisherUser        = "bench-publisher"
	defaultConcurrency   = 100
	defaultWindow        = 256
	defaultAPIConcurrent = 8
	// BenchDevice is the device the inbox scenario's clients name.
	BenchDevice = "bench"
	// defaultBaselineRounds is the rounds of a run with a baseline: two
	// ABBA pairs.
	defaultBaselineRounds = 4
)

// DefaultOptions returns the options `herald bench` starts from.
func DefaultOptions() Options {
	return Options{
		Server:         DefaultServer,
		API:            DefaultAPI,
		Clients:        1000,
		Concurrency:    defaultConcurrency,
		ConnectTimeout: 10 * time.Second,
		InsecureUsers:  true,
		UserPrefix:     DefaultUserPrefix,
		Channel:        DefaultChannel,
		Hold:           10 * time.Second,
		Messages:       100,
		Size:           DefaultSize,
		Via:            ViaClient,
		Batch:          1,
		Publishers:     1,
		PublishBatch:   1,
		APIConcurrency: defaultAPIConcurrent,
		Window:         defaultWindow,
		Cycles:         10000,
		Online:         -1,
		Settle:         5 * time.Second,
		Drain:          10 * time.Second,
		Timeout:        5 * time.Minute,
	}
}

// withDefaults fills zero values that have a sensible default.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Server == "" {
		o.Server = d.Server
	}
	if o.API == "" {
		o.API = d.API
	}
	if o.Concurrency == 0 {
		o.Concurrency = d.Concurrency
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = d.ConnectTimeout
	}
	if o.UserPrefix == "" {
		o.UserPrefix = d.UserPrefix
	}
	if o.Channel == "" {
		o.Channel = d.Channel
	}
	if o.Via == "" {
		o.Via = d.Via
	}
	if o.Publishers == 0 {
		o.Publishers = d.Publishers
	}
	if o.PublishBatch == 0 {
		o.PublishBatch = d.PublishBatch
	}
	if o.Batch == 0 {
		o.Batch = d.Batch
	}
	if o.APIConcurrency == 0 {
		o.APIConcurrency = d.APIConcurrency
	}
	if o.Window == 0 {
		o.Window = d.Window
	}
	if o.Drain == 0 {
		o.Drain = d.Drain
	}
	if o.Timeout == 0 {
		o.Timeout = d.Timeout
	}
	if o.Scenario == ScenarioChurn && o.Rate == 0 {
		o.Rate = DefaultChurnRate
	}
	if o.Rounds == 0 {
		o.Rounds = 1
		if o.hasBaseline() {
			o.Rounds = defaultBaselineRounds
		}
	}
	if o.Online < 0 || o.Online > o.Clients {
		o.Online = o.Clients
	}
	return o
}

// hasBaseline reports whether the options name a baseline.
func (o Options) hasBaseline() bool {
	return o.BaselineServer != "" || o.BaselineAPI != "" || o.BaselineChannel != "" || len(o.BaselinePIDs) > 0
}

// baseline returns the options of the baseline side of a compared run.
func (o Options) baseline() Options {
	b := o
	b.BaselineServer, b.BaselineAPI, b.BaselinePIDs, b.BaselineChannel = "", "", nil, ""
	if o.BaselineServer != "" {
		b.Server = o.BaselineServer
	}
	if o.BaselineAPI != "" {
		b.API = o.BaselineAPI
	}
	if len(o.BaselinePIDs) > 0 || b.API != o.API {
		b.ServerPIDs = o.BaselinePIDs // another server: its own processes, if named
	}
	if o.BaselineChannel != "" {
		b.Channel = o.BaselineChannel
	}
	if b.Server == o.Server {
		// The same server: distinct users, so that neither side gets
		// the other's direct messages.
		b.UserPrefix = o.UserPrefix + "base"
	}
	return b
}

// Validate reports every invalid option at once, wrapped in
// ErrInvalidOptions.
func (o Options) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	known := false
	for _, s := range Scenarios {
		known = known || o.Scenario == s
	}
	check(known, "scenario: want idle, fanout, direct, churn, abuse, recover, inbox or offline, got %q", o.Scenario)
	check(o.Scenario != ScenarioOffline || o.hasHookReceiver(), "offline: needs --hook-receiver, the server's --events-webhook")
	check(o.HookDelay >= 0, "hook-delay: must not be negative")
	check(o.Clients >= 1 || !o.Scenario.hasClients(), "clients: must be at least 1")
	check(o.Concurrency >= 1, "concurrency: must be at least 1")
	check(o.ConnectRate >= 0, "connect-rate: must not be negative")
	check(o.ConnectTimeout > 0, "connect-timeout: must be positive")
	check(o.InsecureUsers || o.HMACSecret != "", "either insecure users or an HMAC secret is needed to connect")
	check(o.Hold >= 0, "hold: must not be negative")
	check(o.Messages >= 1 || !o.Scenario.sends(), "messages: must be at least 1")
	check(o.Rounds >= 0 && o.Rounds <= max(o.Messages, 1), "rounds: must be between 1 and --messages (0: automatic), got %d", o.Rounds)
	check(o.Rounds <= 1 || o.Scenario == ScenarioFanout || o.Scenario == ScenarioDirect, "rounds: only fanout and direct run in rounds")
	check(!o.hasBaseline() || o.Scenario == ScenarioFanout || o.Scenario == ScenarioDirect, "baseline: only fanout and direct compare with a baseline")
	check(!o.hasBaseline() || o.Stalled == 0, "baseline: a fanout with stalled subscribers has no baseline")
	check(o.Stalled == 0 || o.Rounds <= 1, "stalled: a fanout with stalled subscribers runs in one round")
	check(positive(o.BaselinePIDs), "baseline-pid: must be positive")
	check(o.Settle >= 0, "settle: must not be negative")
	check(o.Size >= 0 && o.Size <= 1<<20, "size: must be between 0 and 1048576, got %d", o.Size)
	check(o.Rate >= 0, "rate: must not be negative")
	check(o.Via == ViaClient || o.Via == ViaAPI, "via: want %s or %s, got %q", ViaClient, ViaAPI, o.Via)
	check(o.Publishers >= 1, "publishers: must be at least 1")
	check(o.Publishers == 1 || o.Via == ViaClient, "publishers: only client publishers (--via client) come in numbers")
	check(o.PublishBatch >= 1 && o.PublishBatch <= maxBatch, "publish-batch: must be between 1 and %d, got %d", maxBatch, o.PublishBatch)
	check(o.PublishBatch == 1 || o.Via == ViaAPI, "publish-batch: needs --via api")
	check(o.Batch >= 1 && o.Batch <= maxBatch, "batch: must be between 1 and %d, got %d", maxBatch, o.Batch)
	check(o.APIConcurrency >= 1, "api-concurrency: must be at least 1")
	check(o.Window >= 1, "window: must be at least 1")
	check(o.Cycles >= 1 || o.Scenario != ScenarioChurn, "cycles: must be at least 1")
	check(o.Stalled >= 0, "stalled: must not be negative")
	check(o.Stalled == 0 || o.Scenario == ScenarioFanout, "stalled: only the fanout scenario has stalled subscribers")
	check(o.Drain > 0, "drain: must be positive")
	check(o.Timeout > 0, "timeout: must be positive")
	check(positive(o.ServerPIDs), "server-pid: must be positive")
	check(protocol.ValidChannel(o.Channel), "channel: %q is not a valid channel name", o.Channel)
	check(protocol.ValidUser(o.UserPrefix+"0") && len(o.UserPrefix) <= protocol.MaxUserLen-10,
		"user-prefix: %q does not make valid user ids", o.UserPrefix)
	check(o.BaselineChannel == "" || protocol.ValidChannel(o.BaselineChannel), "baseline-channel: %q is not a valid channel name", o.BaselineChannel)
	if _, err := o.endpoints(); err != nil {
		errs = append(errs, err)
	}
	if o.BaselineServer != "" || o.BaselineAPI != "" {
		if _, err := o.baseline().endpoints(); err != nil {
			errs = append(errs, fmt.Errorf("baseline: %w", err))
		}
	}
	if o.HookReceiver != "" {
		if _, _, err := net.SplitHostPort(o.HookReceiver); err != nil {
			errs = append(errs, fmt.Errorf("hook-receiver: want host:port: %w", err))
		}
	}
	if _, err := parseSourceIPs(o.SourceIPs); err != nil {
		errs = append(errs, fmt.Errorf("source-ips: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	return nil
}

// hasHookReceiver reports whether the run serves a hook receiver.
func (o Options) hasHookReceiver() bool { return o.HookReceiver != "" || o.hookListener != nil }

// peakConnections is the most client connections the run holds at once.
func (o Options) peakConnections() int {
	switch o.Scenario {
	case ScenarioChurn:
		return o.Concurrency + 1
	case ScenarioAbuse:
		return abuseIdleConns + abuseLengthUploads
	case ScenarioInbox:
		return o.Online + 1
	}
	return o.Clients + o.Stalled + o.Publishers
}

// positive reports whether every id is above 0.
func positive(ids []int) bool {
	for _, id := range ids {
		if id <= 0 {
			return false
		}
	}
	return true
}

// publishes reports whether a scenario has a publisher (or sender) that
// PublishOn can pin.
func (s Scenario) publishes() bool {
	return s == ScenarioFanout || s == ScenarioDirect || s == ScenarioChurn || s == ScenarioRecover || s == ScenarioInbox
}

// hasClients reports whether a scenario holds --clients connections.
func (s Scenario) hasClients() bool { return s != ScenarioChurn && s != ScenarioAbuse }

// sends reports whether a scenario sends --messages messages.
func (s Scenario) sends() bool {
	return s == ScenarioFanout || s == ScenarioDirect || s == ScenarioRecover || s == ScenarioInbox
}

// user returns the id of the n-th generated user.
func (o Options) user(n int) string { return o.UserPrefix + strconv.Itoa(n) }
