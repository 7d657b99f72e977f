package server

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

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
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
