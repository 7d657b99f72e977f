package api

import (
	"encoding/json"
	"net/http"
)

// Operator endpoints: what the dashboard (/admin/) shows, under the same
// API key as the rest of /v1.

// Overview is the server's state at a glance. Counters are totals since
// the server started: a reader takes rates from two readings.
type Overview struct {
	Time          int64            `json:"time"` // Unix milliseconds
	UptimeSeconds float64          `json:"uptime_seconds"`
	Connections   int              `json:"connections"` // open, authenticated or not
	Transports    map[string]int   `json:"transports"`  // open connections by transport
	Users         int              `json:"users"`
	Channels      int              `json:"channels"`
	Subscriptions int              `json:"subscriptions"`
	Messages      int64            `json:"messages"`   // accepted
	Deliveries    int64            `json:"deliveries"` // queued to connections
	SlowConsumers int64            `json:"slow_consumers"`
	Disconnects   map[string]int64 `json:"disconnects"` // ended connections by reason
	Goroutines    int              `json:"goroutines"`
	Memory        Memory           `json:"memory"`
	Nodes         []Node           `json:"nodes"`
	Hooks         Hooks            `json:"hooks"`
	// Redis is the link to Redis of a node of a cluster; absent for a
	// server alone.
	Redis *Redis `json:"redis,omitempty"`
}

// Hooks is the health of the calls to the backend, one entry per hook.
type Hooks struct {
	Events    Webhook  `json:"events"`   // --events-webhook
	Receipts  Webhook  `json:"receipts"` // --receipts-webhook
	Connect   AuthHook `json:"connect"`  // --connect-hook
	Subscribe AuthHook `json:"subscribe"`
}

// Webhook is what a webhook did: events queued now, and since start the
// events posted and dropped and the posts failed and retried.
type Webhook struct {
	Configured bool  `json:"configured"`
	Queued     int   `json:"queued"`
	Posted     int64 `json:"posted"`  // events the backend took
	Failed     int64 `json:"failed"`  // posts that failed, each try counted
	Retried    int64 `json:"retried"` // posts made again after a failure
	Dropped    int64 `json:"dropped"` // events lost: queue full or retry window over
}

// AuthHook is what a connect or subscribe hook answered since start, and
// its calls in flight now.
type AuthHook struct {
	Configured bool  `json:"configured"`
	Admitted   int64 `json:"admitted"`
	Refused    int64 `json:"refused"`
	Failed     int64 `json:"failed"` // no usable answer in time
	Busy       int64 `json:"busy"`   // not asked: too many calls in flight
	InFlight   int   `json:"in_flight"`
}

// Memory is the process's memory as the Go runtime sees it, in bytes.
type Memory struct {
	Heap  uint64 `json:"heap"`  // live and unswept heap objects
	Total uint64 `json:"total"` // everything the runtime has mapped
	Limit int64  `json:"limit"` // the soft memory limit (GOMEMLIMIT); math.MaxInt64 when none
}

// Node is one server of a cluster; a single server lists itself.
type Node struct {
	ID   string `json:"id"`
	Self bool   `json:"self"`
	// In a cluster: the node's connections as it last reported them,
	// and when (Unix milliseconds).
	Connections int   `json:"connections,omitempty"`
	Heartbeat   int64 `json:"heartbeat,omitempty"`
}

// Redis is a cluster node's link to Redis.
type Redis struct {
	Up            bool    `json:"up"`
	RTTMillis     float64 `json:"rtt_ms"`
	Subscriptions int     `json:"subscriptions"`
	Lost          int     `json:"lost"`
	Reconnects    uint64  `json:"reconnects"`
}

// ChannelCount is a channel and the connections subscribed to it.
type ChannelCount struct {
	Channel     string `json:"channel"`
	Connections int    `json:"connections"`
}

// UserCount is an online user and its connections.
type UserCount struct {
	User        string `json:"user"`
	Connections int    `json:"connections"`
}

// Connection is one connection of a user, for the operator.
type Connection struct {
	Client      string   `json:"client"`
	Transport   string   `json:"transport"`
	Remote      string   `json:"remote"`
	ConnectedAt int64    `json:"connected_at"` // Unix milliseconds
	Channels    []string `json:"channels"`
}

// Operator is what the operator endpoints read; the server implements it
// beside Backend.
type Operator interface {
	Overview() Overview
	// TopChannels returns the n busiest channels and the total of
	// subscriptions.
	TopChannels(n int) ([]ChannelCount, int)
	// OnlineUsers returns the first n online users by name and how many
	// are online.
	OnlineUsers(n int) ([]UserCount, int)
	// UserConnections lists user's connections and its presence info.
	UserConnections(user string) ([]Connection, json.RawMessage)
}

// Bounds of the limit parameter of the list endpoints.
const (
	defaultListLimit = 20
	maxListLimit     = 1000
)

// listLimit reads ?limit=N.
func listLimit(r *http.Request) (int, error) {
	return limitParam(r.URL.Query(), defaultListLimit, 0, maxListLimit)
}

func (a *API) overview(*http.Request) (any, error) { return a.op.Overview(), nil }

func (a *API) channels(r *http.Request) (any, error) {
	n, err := listLimit(r)
	if err != nil {
		return nil, err
	}
	top, subs := a.op.TopChannels(n)
	if top == nil {
		top = []ChannelCount{}
	}
	return struct {
		Subscriptions int            `json:"subscriptions"`
		Busiest       []ChannelCount `json:"busiest"`
	}{subs, top}, nil
}

func (a *API) users(r *http.Request) (any, error) {
	n, err := listLimit(r)
	if err != nil {
		return nil, err
	}
	list, total := a.op.OnlineUsers(n)
	if list == nil {
		list = []UserCount{}
	}
	return struct {
		Users int         `json:"users"`
		List  []UserCount `json:"list"`
	}{total, list}, nil
}

func (a *API) user(r *http.Request) (any, error) {
	u, err := pathUser(r)
	if err != nil {
		return nil, err
	}
	conns, info := a.op.UserConnections(u)
	if conns == nil {
		conns = []Connection{}
	}
	return struct {
		User        string          `json:"user"`
		Online      bool            `json:"online"`
		Info        json.RawMessage `json:"info,omitempty"`
		Connections []Connection    `json:"connections"`
	}{u, len(conns) > 0, info, conns}, nil
}
