package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Run executes one scenario and returns what it measured. progress, when
// not nil, receives progress bars (pass nil when it is not a terminal).
//
// The error is for runs that could not start: invalid options, a target
// outside loopback, too low a file limit, an unreadable server process. A
// run that started returns its Result and a nil error even when it failed;
// Result.Check gives the verdict.
func Run(ctx context.Context, o Options, progress io.Writer) (Result, error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	hooks, err := o.startHookReceiver(ctx)
	if err != nil {
		return Result{}, err
	}
	if hooks != nil {
		defer hooks.close()
	}
	if o.hasBaseline() {
		return runCompared(ctx, o, hooks, progress)
	}
	r, err := newRunner(ctx, o, progress)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	r.hooks = hooks

	start := time.Now()
	r.res.StartedAt = start.UTC()
	runCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	switch o.Scenario {
	case ScenarioIdle:
		r.runIdle(runCtx)
	case ScenarioFanout:
		r.runFanout(runCtx)
	case ScenarioDirect:
		r.runDirect(runCtx)
	case ScenarioChurn:
		r.runChurn(runCtx)
	case ScenarioAbuse:
		r.runAbuse(runCtx)
	case ScenarioRecover:
		r.runRecover(runCtx)
	case ScenarioInbox:
		r.runInbox(runCtx)
	case ScenarioOffline:
		r.runOffline(runCtx)
	}
	r.finish(runCtx, start)
	return r.res, nil
}

// startHookReceiver starts the hook receiver the options ask for, if any.
func (o Options) startHookReceiver(ctx context.Context) (*hookReceiver, error) {
	ln := o.hookListener
	if ln == nil && o.HookReceiver != "" {
		host, _, _ := net.SplitHostPort(o.HookReceiver) // Validate checked it
		if !o.AllowRemote {
			if err := checkLoopback(ctx, host); err != nil {
				return nil, fmt.Errorf("hook-receiver: %w", err)
			}
		}
		var err error
		if ln, err = net.Listen("tcp", o.HookReceiver); err != nil {
			return nil, fmt.Errorf("hook-receiver: %w", err)
		}
	}
	if ln == nil {
		return nil, nil
	}
	return startHookReceiver(ln, o.HookDelay), nil
}

// runner holds the state of one run.
type runner struct {
	o        Options
	eps      endpoints
	sources  []netip.Addr
	op       *opener
	sink     *sink
	fleet    *fleet      // the clients under test
	aux      *fleet      // the publisher
	api      *apiClient  // round-robin over every --api URL
	sendAPI  *apiClient  // the API calls that publish or send
	proc     *procSet    // nil without a server pid
	self     *procReader // this process
	progress io.Writer
	label    string        // names the side of a compared run in progress bars
	hooks    *hookReceiver // nil without HookReceiver

	handshakes atomic.Int64
	res        Result
}

// fdMargin is file descriptors kept for everything but client connections.
const fdMargin = 64

func newRunner(ctx context.Context, o Options, progress io.Writer) (*runner, error) {
	eps, err := o.endpoints()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if !o.AllowRemote {
		if err := eps.checkLoopback(ctx); err != nil {
			return nil, err
		}
	}
	sources, _ := parseSourceIPs(o.SourceIPs) // Validate checked it
	if len(sources) == 0 {
		lifetime := o.Clients + 1
		switch o.Scenario {
		case ScenarioChurn:
			lifetime = o.Cycles + o.Concurrency
		case ScenarioRecover:
			lifetime = 2*o.Clients + 1 // every client connects twice
		}
		sources = autoSourcesAll(eps.hosts(), lifetime)
	}
	loopback := false
	for _, host := range eps.hosts() {
		loopback = loopback || strings.EqualFold(host, "localhost") || isLoopbackLiteral(host)
	}
	if err := checkSources(sources, loopback); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if err := checkFileLimit(o.peakConnections() + o.APIConcurrency + fdMargin); err != nil {
		return nil, err
	}
	s := newSink()
	// Messages sent to clients that were away arrive late by design: their
	// age is no latency.
	s.noLatency = o.Scenario == ScenarioRecover || o.Scenario == ScenarioInbox
	api := newAPIClient(eps.apis, o.APIKey, o.APIConcurrency+2)
	r := &runner{
		o:        o,
		eps:      eps,
		sources:  sources,
		sink:     s,
		fleet:    &fleet{},
		aux:      &fleet{},
		api:      api,
		sendAPI:  api,
		progress: progress,
		self:     newProcReader(os.Getpid()),
		op: &opener{
			dialer:  newDialer(eps.servers, eps.clients, sources),
			creds:   newCredentials(o.HMACSecret),
			sink:    s,
			timeout: o.ConnectTimeout,
		},
	}
	if eps.publishOn >= 0 && o.publishesViaAPI() {
		r.sendAPI = api.pinned(eps.publishOn)
	}
	if eps.multi() {
		r.op.byEndpoint = make([]atomic.Int64, len(eps.servers))
	}
	if len(o.ServerPIDs) > 0 {
		r.proc = newProcSet(o.ServerPIDs)
		if _, err := r.proc.sample(); err != nil {
			return nil, err
		}
		r.res.Process = newServerProcess(o.ServerPIDs, r.proc.readers[0].hz)
	}
	r.res.Scenario = o.Scenario
	r.res.Transport = eps.servers[0].transport()
	r.res.Server = o.Server
	if o.Scenario.hasClients() {
		r.res.Clients = o.Clients
	}
	if o.Scenario == ScenarioInbox {
		r.res.Clients = o.Online
	}
	r.res.Settings = r.settings()
	return r, nil
}

// publisherOpener returns the opener of client publishers: on the
// endpoint PublishOn names, else round-robin like the clients; their
// handshakes are not the clients'.
func (r *runner) publisherOpener() *opener {
	op := *r.op
	op.dialer = newDialer(r.eps.servers, r.eps.publisherTargets(), r.sources)
	op.byEndpoint = nil
	return &op
}

// recordEndpoints fills the handshakes per endpoint of a run with several.
func (r *runner) recordEndpoints() {
	if r.op.byEndpoint == nil {
		return
	}
	r.res.Endpoints = make([]Endpoint, len(r.eps.servers))
	for i, t := range r.eps.servers {
		e := Endpoint{Server: t.url, Handshakes: r.op.byEndpoint[i].Load()}
		if e.Server == "" {
			e.Server = "tcp://" + t.addr
		}
		e.Publisher = i == r.eps.publishOn && r.res.Publisher == ViaClient
		r.res.Endpoints[i] = e
	}
}

// isLoopbackLiteral reports whether host is a loopback IP literal.
func isLoopbackLiteral(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (r *runner) settings() Settings {
	o := r.o
	s := Settings{
		ConnectRate: o.ConnectRate,
		Concurrency: o.Concurrency,
		SourceIPs:   len(r.sources),
		Auth:        "insecure",
	}
	if o.HMACSecret != "" {
		s.Auth = "jwt"
	}
	switch o.Scenario {
	case ScenarioIdle:
		s.HoldSeconds = o.Hold.Seconds()
	case ScenarioFanout, ScenarioRecover:
		s.Messages, s.PayloadBytes, s.Rate = o.Messages, o.Size, o.Rate
		if o.Via == ViaAPI {
			s.APIConcurrency = o.APIConcurrency
		}
		s.Channel = o.Channel
	case ScenarioDirect, ScenarioInbox:
		s.Messages, s.PayloadBytes, s.Rate = o.Messages, o.Size, o.Rate
		s.Batch, s.APIConcurrency = o.Batch, o.APIConcurrency
	case ScenarioChurn:
		s.Cycles, s.Rate, s.PayloadBytes = o.Cycles, o.Rate, o.Size
	}
	if o.Rounds > 1 {
		s.Rounds = o.Rounds
	}
	if o.Publishers > 1 {
		s.Publishers = o.Publishers
	}
	return s
}

// desc is a progress bar's description: what, for the side of a compared
// run when it has a label.
func (r *runner) desc(what string) string {
	if r.label == "" {
		return what
	}
	return r.label + " " + what
}

// close stops every client and reader of the run.
func (r *runner) close() {
	r.fleet.closeAll()
	r.aux.closeAll()
	r.api.close()
}
