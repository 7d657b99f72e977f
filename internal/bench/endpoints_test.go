package bench

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSplitList(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"":                           nil,
		"ws://a:1/ws":                {"ws://a:1/ws"},
		" ws://a:1/ws , ws://b:2/ws": {"ws://a:1/ws", "ws://b:2/ws"},
		"a,,b,":                      {"a", "b"},
	} {
		if got := SplitList(in); !slices.Equal(got, want) {
			t.Errorf("SplitList(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	three := "ws://127.0.0.1:7600/ws,ws://127.0.0.1:7700/ws,ws://127.0.0.1:7800/ws"
	o := DefaultOptions()
	o.Scenario, o.Server = ScenarioFanout, three
	e, err := o.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(e.servers) != 3 || !slices.Equal(e.clients, []int{0, 1, 2}) || e.publishOn != -1 {
		t.Fatalf("endpoints = %+v", e)
	}
	var spread []int
	for n := range 7 {
		spread = append(spread, e.clientTarget(n))
	}
	if want := []int{0, 1, 2, 0, 1, 2, 0}; !slices.Equal(spread, want) {
		t.Errorf("clients 0-6 on endpoints %v, want %v", spread, want)
	}
	if got := e.publisherTargets(); !slices.Equal(got, e.clients) {
		t.Errorf("unpinned publisher on %v, want the clients' %v", got, e.clients)
	}

	o.PublishOn = 3
	if e, err = o.endpoints(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.clients, []int{0, 1}) || !slices.Equal(e.publisherTargets(), []int{2}) {
		t.Errorf("publish-on 3: clients on %v, publisher on %v; want [0 1], [2]", e.clients, e.publisherTargets())
	}

	// API publishers count in --api; the --server endpoint of the same
	// number still holds no clients.
	o.Via, o.API, o.PublishOn = ViaAPI, "http://127.0.0.1:7600,http://127.0.0.1:7700", 2
	if e, err = o.endpoints(); err != nil {
		t.Fatal(err)
	}
	if e.publishOn != 1 || !slices.Equal(e.clients, []int{0, 2}) {
		t.Errorf("publish-on 2 via api: %+v", e)
	}

	// One endpoint: the clients stay on it.
	o.Server, o.API, o.PublishOn = DefaultServer, DefaultAPI, 1
	if e, err = o.endpoints(); err != nil || !slices.Equal(e.clients, []int{0}) {
		t.Errorf("one endpoint, publish-on 1: %+v, %v", e, err)
	}

	for name, mutate := range map[string]func(*Options){
		"mixed transports":  func(o *Options) { o.Server = "ws://127.0.0.1:7600/ws,tcp://127.0.0.1:7601" },
		"empty server":      func(o *Options) { o.Server = " , " },
		"empty api":         func(o *Options) { o.API = "," },
		"bad api":           func(o *Options) { o.API = DefaultAPI + ",http://" },
		"publish-on range":  func(o *Options) { o.Server, o.PublishOn = three, 4 },
		"publish-on api":    func(o *Options) { o.Server, o.Via, o.PublishOn = three, ViaAPI, 2 },
		"publish-on idle":   func(o *Options) { o.Scenario, o.Server, o.PublishOn = ScenarioIdle, three, 1 },
		"publish-on direct": func(o *Options) { o.Scenario, o.Server, o.PublishOn = ScenarioDirect, three, 3 },
		"negative pid":      func(o *Options) { o.ServerPIDs = []int{os.Getpid(), -1} },
		"baseline server":   func(o *Options) { o.BaselineServer = "ws://127.0.0.1:7700/ws,http://x" },
	} {
		o := DefaultOptions()
		o.Scenario = ScenarioFanout
		mutate(&o)
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: Validate = %v, want ErrInvalidOptions", name, err)
		}
	}
}

func TestDialerSpread(t *testing.T) {
	t.Parallel()
	var targets []target
	for _, s := range []string{"tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3"} {
		tg, err := parseTarget(s)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	d := newDialer(targets, []int{0, 2}, nil)
	for n, want := range []int{0, 2, 0, 2} {
		if got := d.endpoint(n); got != want {
			t.Errorf("connection %d on endpoint %d, want %d", n, got, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, ep, err := d.dial(ctx, 1); err == nil || ep != 2 || !strings.Contains(err.Error(), "127.0.0.1:3") {
		t.Errorf("dial 1 = endpoint %d, %v; want endpoint 2 refused at 127.0.0.1:3", ep, err)
	}
}

// API calls go to the base URLs in turn; a pinned client calls one only;
// reads of the server's state ask every base and sum.
func TestAPIClientRoundRobin(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	hits := map[string]int{}
	var bases []string
	for _, name := range []string{"a", "b", "c"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name+" "+r.URL.Path]++
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			switch r.URL.Path {
			case "/v1/publish":
				_, _ = w.Write([]byte(`{"id":"1"}`))
			case "/v1/stats":
				_, _ = w.Write([]byte(`{"connections":5,"users":1,"channels":1}`))
			case "/metrics":
				_, _ = w.Write([]byte("go_goroutines 7\n"))
			}
		}))
		t.Cleanup(srv.Close)
		bases = append(bases, srv.URL+"/")
	}
	a := newAPIClient(bases, "", 4)
	defer a.close()
	ctx := context.Background()
	for range 6 {
		if err := a.publish(ctx, "c", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	p := a.pinned(2)
	for range 3 {
		if err := p.publish(ctx, "c", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := a.stats(ctx)
	if err != nil || s.Connections != 15 {
		t.Errorf("stats = %+v, %v; want 15 connections", s, err)
	}
	if n, ok := a.goroutines(ctx); !ok || n != 21 {
		t.Errorf("goroutines = %d, %v; want 21", n, ok)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits["a /v1/publish"] != 2 || hits["b /v1/publish"] != 2 || hits["c /v1/publish"] != 5 {
		t.Errorf("publishes per base: %v; want a 2, b 2, c 2+3", hits)
	}
}
