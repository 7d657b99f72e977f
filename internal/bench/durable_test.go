package bench

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/config"
)

// historyChannel is a channel of the namespace durableConfig keeps
// history for.
const historyChannel = "hist:bench"

// durableConfig is benchConfig with a namespace "hist" that keeps history.
func durableConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := benchConfig(t)
	cfg.Namespaces = []config.Namespace{{Name: "hist", Subscribe: config.SubscribeAny, Publish: config.PublishClients, HistorySize: 1000}}
	return cfg
}

func TestRecover(t *testing.T) {
	t.Parallel()
	ts := startServer(t, durableConfig(t))
	for _, tc := range []struct{ transport, via string }{{"ws", ViaClient}, {"tcp", ViaAPI}} {
		t.Run(tc.transport+" via "+tc.via, func(t *testing.T) {
			o := testOptions(ts, ScenarioRecover, tc.transport)
			o.Clients, o.Messages, o.Via = 3, 200, tc.via
			o.Channel = historyChannel + "-" + tc.transport
			o.UserPrefix = "r" + tc.transport
			o.ServerPIDs = []int{os.Getpid()}
			res := run(t, o)
			mustPass(t, res)
			if res.DeliveriesExpected != 600 || res.DeliveriesReceived != 600 {
				t.Errorf("deliveries %d of %d, want 600", res.DeliveriesReceived, res.DeliveriesExpected)
			}
			if f := res.Fill; f == nil || f.Messages != 200 || f.Failed != 0 || f.MessagesPerSecond <= 0 {
				t.Errorf("fill = %+v, want 200 messages stored", f)
			}
			rec := res.Recovery
			if rec == nil || rec.Clients != 3 || rec.Complete != 3 || rec.Refused != 0 || rec.Time == nil || rec.Time.Count != 3 {
				t.Fatalf("recovery = %+v, want 3 clients that recovered everything", rec)
			}
			if res.Latency != nil {
				t.Errorf("recovered messages reported as latency: %+v", res.Latency)
			}
		})
	}
}

// Several client publishers fill a channel with history at once.
func TestRecoverPublishers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, durableConfig(t))
	o := testOptions(ts, ScenarioRecover, "tcp")
	o.Clients, o.Messages, o.Publishers = 2, 301, 4
	o.Channel = historyChannel + "-publishers"
	res := run(t, o)
	mustPass(t, res)
	if res.Fill == nil || res.Fill.Messages != 301 || res.DeliveriesReceived != 602 || res.Settings.Publishers != 4 {
		t.Errorf("fill %+v, received %d, publishers %d; want 301 stored, 602 received, 4", res.Fill, res.DeliveriesReceived, res.Settings.Publishers)
	}
}

// A channel without history recovers nothing: the run says why.
func TestRecoverWithoutHistory(t *testing.T) {
	t.Parallel()
	ts := startServer(t, durableConfig(t))
	o := testOptions(ts, ScenarioRecover, "ws")
	o.Clients, o.Messages, o.Channel = 2, 10, "plain:bench"
	res := run(t, o)
	if res.OK || !strings.Contains(strings.Join(res.Failures, "; "), "keeps no history") {
		t.Fatalf("ok %v, failures %q; want a failure naming the missing history", res.OK, res.Failures)
	}
}

func TestInbox(t *testing.T) {
	t.Parallel()
	ts := startServer(t, durableConfig(t))
	o := testOptions(ts, ScenarioInbox, "ws")
	o.Clients, o.Messages, o.Batch, o.Settle = 30, 5, 8, 0
	o.UserPrefix = "in"
	o.ServerPIDs = []int{os.Getpid()}
	res := run(t, o)
	mustPass(t, res)
	if res.DeliveriesExpected != 150 || res.DeliveriesReceived != 150 || res.Connections != 30 {
		t.Errorf("deliveries %d of %d to %d connections, want 150 to 30", res.DeliveriesReceived, res.DeliveriesExpected, res.Connections)
	}
	if f := res.Fill; f == nil || f.Messages != 150 || res.APICalls != 4*5 {
		t.Errorf("fill = %+v in %d calls, want 150 messages in 20", f, res.APICalls)
	}
	if m := res.Memory; m == nil || m.RSSEmptyBytes <= 0 || m.RSSFilledBytes <= 0 || m.Pending != 150 {
		t.Errorf("memory = %+v", m)
	}
	if rec := res.Recovery; rec == nil || rec.Complete != 30 || rec.Refused != 0 {
		t.Fatalf("recovery = %+v, want 30 devices with everything", rec)
	}

	// Every device acknowledged its messages: the same users, sent as
	// many again, have only the new ones pending.
	res = run(t, o)
	mustPass(t, res)
	if rec := res.Recovery; rec == nil || rec.Complete != 30 || rec.Refused != 0 {
		t.Fatalf("second run: recovery = %+v, want 30 devices with only the new messages", rec)
	}
}

// With nobody coming online, the inbox scenario stores and reads memory
// only, and holds no connection.
func TestInboxOffline(t *testing.T) {
	t.Parallel()
	ts := startServer(t, durableConfig(t))
	o := testOptions(ts, ScenarioInbox, "tcp")
	o.Clients, o.Messages, o.Batch, o.Online, o.Settle = 50, 3, 50, 0, 0
	o.ServerPIDs = []int{os.Getpid()}
	res := run(t, o)
	mustPass(t, res)
	if res.Connections != 0 || res.Sent != 150 || res.Memory == nil || res.Memory.Pending != 150 {
		t.Errorf("connections %d, sent %d, memory %+v; want 0, 150 and 150 pending", res.Connections, res.Sent, res.Memory)
	}
}

// Direct messages against two servers, one keeping no inbox, in
// alternating rounds.
func TestDirectBaseline(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	cfg := benchConfig(t)
	cfg.InboxTTL = 0
	base := startServer(t, cfg)
	o := testOptions(ts, ScenarioDirect, "ws")
	o.Clients, o.Messages = 20, 6
	o.BaselineServer, o.BaselineAPI = base.wsURL, base.apiURL
	o.ServerPIDs, o.BaselinePIDs = []int{os.Getpid()}, []int{os.Getpid()}
	res := run(t, o)
	mustPass(t, res)
	b := res.Baseline
	if b == nil {
		t.Fatal("no baseline result")
	}
	for name, r := range map[string]Result{"target": res, "baseline": *b} {
		if r.DeliveriesReceived != 120 || r.Sent != 120 || r.APICalls != 120 || r.Process == nil {
			t.Errorf("%s: received %d, sent %d in %d calls, process %+v; want 120, 120, 120", name, r.DeliveriesReceived, r.Sent, r.APICalls, r.Process)
		}
	}
	if b.Server != base.wsURL || res.Settings.Rounds != defaultBaselineRounds || res.VsBaseline <= 0 {
		t.Errorf("baseline %s, rounds %d, ratio %v", b.Server, res.Settings.Rounds, res.VsBaseline)
	}
	var text strings.Builder
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "vs baseline") {
		t.Errorf("report lacks the comparison:\n%s", text.String())
	}
}

// Fan-out to a channel with history against one without, on one server,
// by API and by client publishers, which publish once a round.
func TestFanoutBaselineChannel(t *testing.T) {
	t.Parallel()
	ts := startServer(t, durableConfig(t))
	for _, tc := range []struct {
		via        string
		publishers int
	}{{ViaAPI, 1}, {ViaClient, 1}, {ViaClient, 3}} {
		t.Run(fmt.Sprint(tc.via, tc.publishers), func(t *testing.T) {
			o := testOptions(ts, ScenarioFanout, "tcp")
			o.Clients, o.Messages, o.Rounds, o.Via, o.Publishers = 10, 30, 3, tc.via, tc.publishers
			o.Window = 4
			o.Channel, o.BaselineChannel = historyChannel+"-"+tc.via, "plain:"+tc.via
			o.UserPrefix = fmt.Sprint("fb", tc.via, tc.publishers, "-")
			res := run(t, o)
			mustPass(t, res)
			if b := res.Baseline; b == nil || b.DeliveriesReceived != 300 || res.DeliveriesReceived != 300 || b.Settings.Channel != o.BaselineChannel {
				t.Fatalf("deliveries %d, baseline %+v; want 300 each", res.DeliveriesReceived, b)
			}
		})
	}
}
