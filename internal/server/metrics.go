package server

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldpush/herald/internal/hooks"
)

// cap1 returns s with its first letter in upper case (s is ASCII).
func cap1(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// counters the server keeps beside the session manager's.
type counters struct {
	messages   atomic.Int64 // messages accepted (client ops and API)
	deliveries atomic.Int64 // frames queued to connections for them

	historyAppends  atomic.Int64 // channel messages stored
	inboxPushes     atomic.Int64 // direct messages stored
	storeFailures   atomic.Int64 // messages the store refused
	recovered       atomic.Int64 // subscribes that recovered everything missed
	notRecovered    atomic.Int64 // subscribes told recovered: false
	backlogMessages atomic.Int64 // stored messages queued by recoveries and inbox deliveries
	acks            atomic.Int64 // inbox acknowledgements stored
	gaps            atomic.Int64 // cluster: times messages were missed from Redis
}

// metricsHandler exposes the server's state in the Prometheus text format.
// Every metric reads a value the server keeps anyway, at scrape time: no
// work is added to the message path.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "herald", Name: name, Help: help}, f))
	}
	counter := func(name, help string, v *atomic.Int64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "herald", Name: name, Help: help},
			func() float64 { return float64(v.Load()) }))
	}
	gauge("connections", "Open connections, authenticated or not.", func() float64 { return float64(s.mgr.Len()) })
	gauge("users_online", "Distinct users with at least one connection.", func() float64 { return float64(s.hub.Stats().Users) })
	gauge("channels", "Channels with at least one subscriber.", func() float64 { return float64(s.hub.Stats().Channels) })
	m := s.mgr.Metrics()
	counter("connections_opened_total", "Connections opened.", &m.Opened)
	counter("connections_closed_total", "Connections closed.", &m.Closed)
	counter("slow_consumers_total", "Connections dropped because they fell behind.", &m.SlowConsumers)
	counter("frames_received_total", "Client frames handled.", &m.FramesIn)
	counter("client_errors_total", "Error replies sent to clients.", &m.Errors)
	counter("messages_total", "Messages accepted for delivery.", &s.counters.messages)
	counter("deliveries_total", "Message frames queued to connections.", &s.counters.deliveries)
	c := &s.counters
	counter("history_appends_total", "Channel messages stored in history.", &c.historyAppends)
	counter("inbox_pushes_total", "Direct messages stored in inboxes.", &c.inboxPushes)
	counter("store_failures_total", "Messages refused because the store failed to write them.", &c.storeFailures)
	counter("recoveries_total", "Subscribes that recovered every missed message.", &c.recovered)
	counter("recoveries_failed_total", "Subscribes that asked to recover and were told recovered: false.", &c.notRecovered)
	counter("backlog_messages_total", "Stored messages queued by recoveries and inbox deliveries.", &c.backlogMessages)
	counter("inbox_acks_total", "Inbox acknowledgements stored.", &c.acks)
	gauge("subscriptions", "Channel subscriptions of all connections (a connection subscribed to 3 channels counts 3).", func() float64 {
		_, n := s.hub.TopChannels(0)
		return float64(n)
	})
	gauge("busiest_channel_subscribers", "Connections subscribed to the busiest channel (the list is GET /v1/channels: channel names are no labels).", func() float64 {
		top, _ := s.hub.TopChannels(1)
		if len(top) == 0 {
			return 0
		}
		return float64(top[0].Connections)
	})
	reg.MustRegister(&labelledCounts{s: s,
		byTransport: prometheus.NewDesc("herald_connections_by_transport", "Open connections of each transport, authenticated or not.", []string{"transport"}, nil),
		disconnects: prometheus.NewDesc("herald_disconnects_total", "Connections ended, by reason (client_closed: the client or the network ended it).", []string{"reason"}, nil),
	})
	reg.MustRegister(s.latency)
	if s.cfg.Redis != "" {
		// Built before Start connects to Redis: read at scrape time.
		s.clusterMetrics(reg, gauge, counter)
	}
	// webhook exports the counters of the webhook named name, whose
	// events are of kind, read from its poster at scrape time.
	webhook := func(name, kind string, poster func() webhookPoster) {
		count := func(suffix, help string, v func(*hooks.Counters) *atomic.Int64) {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "herald", Name: name + suffix, Help: help},
				func() float64 { return float64(v(poster().Stats()).Load()) }))
		}
		count("_posted_total", cap1(kind)+" events the backend took.", func(c *hooks.Counters) *atomic.Int64 { return &c.Posted })
		count("_dropped_total", cap1(kind)+" events dropped: the webhook's queue was full, or the backend did not take them within the retry window.", func(c *hooks.Counters) *atomic.Int64 { return &c.Dropped })
		count("_failed_posts_total", "Posts of "+kind+" events that failed (each retry counts).", func(c *hooks.Counters) *atomic.Int64 { return &c.Failed })
		count("_retried_posts_total", "Posts of "+kind+" events made again because the one before failed.", func(c *hooks.Counters) *atomic.Int64 { return &c.Retried })
		gauge(name+"_queued", cap1(kind)+" events waiting to be posted.", func() float64 { return float64(poster().Len()) })
	}
	if h := s.receiptHook; h != nil {
		webhook("receipts_webhook", "receipt", func() webhookPoster { return h.p })
	}
	if h := s.presenceHook; h != nil {
		webhook("events_webhook", "presence", func() webhookPoster { return h.p })
	}
	if h := s.authHooks; h.connect != nil || h.subscribe != nil {
		// The metrics add up both hooks; the overview shows each.
		both := func(name, help string, v func(*authHookStats) *atomic.Int64) {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "herald", Name: name, Help: help},
				func() float64 { return float64(v(&h.connectStats).Load() + v(&h.subscribeStats).Load()) }))
		}
		both("auth_hook_admitted_total", "Connect and subscribe hook calls the backend answered yes.", func(s *authHookStats) *atomic.Int64 { return &s.Admitted })
		both("auth_hook_refused_total", "Connect and subscribe hook calls the backend answered no.", func(s *authHookStats) *atomic.Int64 { return &s.Refused })
		both("auth_hook_failed_total", "Connect and subscribe hook calls without a usable answer in time: the client got hook_unavailable.", func(s *authHookStats) *atomic.Int64 { return &s.Failed })
		both("auth_hook_busy_total", "Connect and subscribe hook calls not made: hook-concurrency calls were in flight; the client got hook_unavailable.", func(s *authHookStats) *atomic.Int64 { return &s.Busy })
		gauge("auth_hook_in_flight", "Connect and subscribe hook calls in flight.", func() float64 {
			n := 0
			for _, c := range []*hooks.Caller{h.connect, h.subscribe} {
				if c != nil {
					n += c.InFlight()
				}
			}
			return float64(n)
		})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// webhookPoster is a webhook's poster, as the metrics read it.
type webhookPoster interface {
	Stats() *hooks.Counters
	Len() int
}

// labelledCounts exports the per-transport and per-reason counts, read at
// scrape time like the rest.
type labelledCounts struct {
	s                        *Server
	byTransport, disconnects *prometheus.Desc
}

func (c *labelledCounts) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.byTransport
	ch <- c.disconnects
}

func (c *labelledCounts) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c.s.mgr.ConnectionsByKind() {
		ch <- prometheus.MustNewConstMetric(c.byTransport, prometheus.GaugeValue, float64(n), string(k))
	}
	for reason, n := range c.s.mgr.Metrics().Disconnects.Snapshot() {
		ch <- prometheus.MustNewConstMetric(c.disconnects, prometheus.CounterValue, float64(n), reason)
	}
}

// newLatencyHistogram measures, for each message, the time from its
// acceptance (Dispatch) to the end of its fan-out on this node: its frame
// queued to every connection it addresses here, from where the writers
// send it at once.
func newLatencyHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "herald",
		Name:      "delivery_latency_seconds",
		Help:      "Time from a message's acceptance to its frame queued on every connection it addresses on this node.",
		Buckets:   prometheus.ExponentialBuckets(50e-6, 2.5, 12), // 50 µs to about 1.2 s
	})
}
