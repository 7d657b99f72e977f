package server

import (
	"context"
	"encoding/json"
	"runtime/metrics"
	"time"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/hooks"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/session"
)

// operator implements api.Operator over the server: what the dashboard
// shows. Every figure is read when asked, from what the server keeps
// anyway.
type operator struct{ *Server }

var _ api.Operator = operator{}

// runtimeSamples are read from runtime/metrics, which, unlike
// runtime.ReadMemStats, does not stop the world.
var runtimeSamples = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes",
	"/gc/gomemlimit:bytes",
	"/sched/goroutines:goroutines",
}

func (o operator) Overview() api.Overview {
	st := o.hub.Stats()
	m := o.mgr.Metrics()
	transports := make(map[string]int, len(session.Kinds))
	for k, n := range o.mgr.ConnectionsByKind() {
		transports[string(k)] = n
	}
	_, subs := o.hub.TopChannels(0)
	samples := make([]metrics.Sample, len(runtimeSamples))
	for i, name := range runtimeSamples {
		samples[i].Name = name
	}
	metrics.Read(samples)
	u64 := func(i int) uint64 {
		if samples[i].Value.Kind() == metrics.KindUint64 {
			return samples[i].Value.Uint64()
		}
		return 0
	}
	return api.Overview{
		Time:          time.Now().UnixMilli(),
		UptimeSeconds: time.Since(o.started).Seconds(),
		Connections:   o.mgr.Len(),
		Transports:    transports,
		Users:         st.Users,
		Channels:      st.Channels,
		Subscriptions: subs,
		Messages:      o.counters.messages.Load(),
		Deliveries:    o.counters.deliveries.Load(),
		SlowConsumers: m.SlowConsumers.Load(),
		Disconnects:   m.Disconnects.Snapshot(),
		Goroutines:    int(u64(3)),
		Memory:        api.Memory{Heap: u64(0), Total: u64(1), Limit: int64(u64(2))},
		Nodes:         o.nodes(),
		Hooks:         o.hooksHealth(),
		Redis:         o.redisLink(),
	}
}

// nodes lists this node, or in a cluster every live node, as Redis
// holds them (this one alone when Redis cannot tell).
func (o operator) nodes() []api.Node {
	self := []api.Node{{ID: o.nodeID, Self: true}}
	if o.cluster == nil {
		return self
	}
	ctx, cancel := context.WithTimeout(o.runCtx, time.Second)
	defer cancel()
	live, err := o.cluster.presence.Nodes(ctx)
	if err != nil {
		return self
	}
	nodes := make([]api.Node, len(live))
	for i, n := range live {
		nodes[i] = api.Node{ID: n.ID, Self: n.ID == o.nodeID, Connections: n.Stats.Connections, Heartbeat: n.Heartbeat.UnixMilli()}
	}
	return nodes
}

// redisLink is the state of a cluster node's link to Redis.
func (o operator) redisLink() *api.Redis {
	if o.cluster == nil {
		return nil
	}
	st := o.cluster.broker.Stats()
	return &api.Redis{Up: st.Up, RTTMillis: float64(st.RTT.Microseconds()) / 1000, Subscriptions: st.Subscriptions, Lost: st.Lost, Reconnects: st.Reconnects}
}

// hooksHealth reads the counters the metrics export, hook by hook.
func (o operator) hooksHealth() api.Hooks {
	var h api.Hooks
	if o.presenceHook != nil {
		h.Events = webhookHealth(o.presenceHook.p)
	}
	if o.receiptHook != nil {
		h.Receipts = webhookHealth(o.receiptHook.p)
	}
	h.Connect = authHookHealth(o.authHooks.connect, &o.authHooks.connectStats)
	h.Subscribe = authHookHealth(o.authHooks.subscribe, &o.authHooks.subscribeStats)
	return h
}

func webhookHealth(p webhookPoster) api.Webhook {
	c := p.Stats()
	return api.Webhook{Configured: true, Queued: p.Len(), Posted: c.Posted.Load(), Failed: c.Failed.Load(), Retried: c.Retried.Load(), Dropped: c.Dropped.Load()}
}

func authHookHealth(c *hooks.Caller, st *authHookStats) api.AuthHook {
	if c == nil {
		return api.AuthHook{}
	}
	return api.AuthHook{Configured: true, Admitted: st.Admitted.Load(), Refused: st.Refused.Load(), Failed: st.Failed.Load(), Busy: st.Busy.Load(), InFlight: c.InFlight()}
}

func (o operator) TopChannels(n int) ([]api.ChannelCount, int) {
	top, subs := o.hub.TopChannels(n)
	return convert(top, func(c hub.Count) api.ChannelCount {
		return api.ChannelCount{Channel: c.Name, Connections: c.Connections}
	}), subs
}

func (o operator) OnlineUsers(n int) ([]api.UserCount, int) {
	list, total := o.hub.Users(n)
	return convert(list, func(c hub.Count) api.UserCount { return api.UserCount{User: c.Name, Connections: c.Connections} }), total
}

func convert[T any](in []hub.Count, f func(hub.Count) T) []T {
	out := make([]T, len(in))
	for i, c := range in {
		out[i] = f(c)
	}
	return out
}

func (o operator) UserConnections(user string) ([]api.Connection, json.RawMessage) {
	subs := o.hub.UserConnections(user)
	if len(subs) == 0 {
		return nil, nil
	}
	out := make([]api.Connection, len(subs))
	for i, sub := range subs {
		s := sub.(*session.Session)
		chans := s.Subscriptions()
		if chans == nil {
			chans = []string{}
		}
		out[i] = api.Connection{
			Client:      s.ClientID(),
			Transport:   string(s.Kind()),
			Remote:      s.Transport().RemoteAddr(),
			ConnectedAt: s.Opened().UnixMilli(),
			Channels:    chans,
		}
	}
	return out, subs[0].(*session.Session).Identity().Info
}
