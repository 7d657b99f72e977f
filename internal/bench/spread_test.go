package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// Clients spread over two servers: each server holds its half while the
// run holds them (two single-node servers share nothing, so the idle
// scenario, which sends nothing, is the one whose counts still work).
func TestIdleSpreadOverServers(t *testing.T) {
	t.Parallel()
	a, b := startServer(t, benchConfig(t)), startServer(t, benchConfig(t))
	o := testOptions(a, ScenarioIdle, "ws")
	o.Server, o.API = a.wsURL+","+b.wsURL, a.apiURL+","+b.apiURL
	o.Clients, o.Hold = 40, 3*time.Second

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan string, 1)
	go func() {
		held <- awaitConnections(ctx, map[string]int{a.apiURL: 20, b.apiURL: 20})
	}()
	res := run(t, o)
	mustPass(t, res)
	if got := <-held; got != "" {
		t.Errorf("while held: %s", got)
	}
	want := []Endpoint{{Server: a.wsURL, Handshakes: 20}, {Server: b.wsURL, Handshakes: 20}}
	if fmt.Sprint(res.Endpoints) != fmt.Sprint(want) {
		t.Errorf("endpoints = %+v, want %+v", res.Endpoints, want)
	}
}

// awaitConnections polls each server's GET /v1/stats until it counts the
// connections want gives it, and returns "" then, or what it last saw.
func awaitConnections(ctx context.Context, want map[string]int) string {
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var off []string
		for api, n := range want {
			c := newAPIClient([]string{api}, "", 1)
			s, err := c.stats(ctx)
			c.close()
			if err != nil || s.Connections != n {
				off = append(off, fmt.Sprintf("%s: %d connections (%v), want %d", api, s.Connections, err, n))
			}
		}
		if len(off) == 0 {
			return ""
		}
		last = strings.Join(off, "; ")
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

// The publisher pinned to an endpoint of its own: one server named twice
// (so that every message still reaches every subscriber), the clients on
// the first name, the publisher on the second; two pids summed.
func TestFanoutPublishOn(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	for _, transport := range []string{"ws", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			o := testOptions(ts, ScenarioFanout, transport)
			o.Server = o.Server + "," + o.Server
			o.Clients, o.Messages, o.PublishOn = 30, 10, 2
			o.UserPrefix = "po" + transport
			o.Channel = "bench:po" + transport
			o.ServerPIDs = []int{os.Getpid(), os.Getpid()}
			res := run(t, o)
			mustPass(t, res)
			if res.DeliveriesReceived != 300 {
				t.Errorf("received %d, want 300", res.DeliveriesReceived)
			}
			e := res.Endpoints
			if len(e) != 2 || e[0].Handshakes != 30 || e[0].Publisher || e[1].Handshakes != 0 || !e[1].Publisher {
				t.Errorf("endpoints = %+v, want 30 clients on the first, the publisher alone on the second", e)
			}
			p := res.Process
			if p == nil || p.PID != 0 || len(p.PIDs) != 2 || len(p.Processes) != 2 || p.Processes[0].PID != os.Getpid() {
				t.Fatalf("server processes = %+v", p)
			}
			// (300 deliveries may take less than a clock tick of CPU: the
			// sum is checked, not that it is above zero.)
			cpu := p.Processes[0].CPUSeconds + p.Processes[1].CPUSeconds
			if p.RSSAfterBytes != p.Processes[0].RSSAfterBytes+p.Processes[1].RSSAfterBytes || math.Abs(p.CPUSeconds-cpu) > 1e-9 {
				t.Errorf("sum %+v is not the sum of %+v", p, p.Processes)
			}
			var text, js bytes.Buffer
			if err := WriteText(&text, res); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"endpoints", "the publisher", "server pids", fmt.Sprintf("pid %d", os.Getpid())} {
				if !strings.Contains(text.String(), want) {
					t.Errorf("text report lacks %q:\n%s", want, text.String())
				}
			}
			if err := WriteJSON(&js, res); err != nil {
				t.Fatal(err)
			}
			var back Result
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Process.Processes) != 2 || len(back.Endpoints) != 2 {
				t.Errorf("JSON round trip: %v, %+v", err, back.Process)
			}
		})
	}
}

// API publishes pinned to the first --api URL never reach the second (a
// port nothing listens on): round-robin would fail half of them.
func TestFanoutViaAPIPublishOn(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	o := testOptions(ts, ScenarioFanout, "ws")
	o.API = ts.apiURL + ",http://127.0.0.1:1"
	o.Via, o.PublishOn, o.Clients, o.Messages = ViaAPI, 1, 10, 20
	o.Channel = "bench:poapi"
	res := run(t, o)
	mustPass(t, res)
	if res.DeliveriesReceived != 200 || res.APICalls != 20 {
		t.Errorf("received %d via %d calls, want 200 via 20", res.DeliveriesReceived, res.APICalls)
	}
}
