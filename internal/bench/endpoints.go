package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// SplitList splits a comma-separated option into its items, trimmed, with
// empty items dropped.
func SplitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// endpoints is where a run's connections and API calls go: the nodes of a
// cluster, or one server.
type endpoints struct {
	servers []target // every --server endpoint
	apis    []string // every --api base URL
	// clients is the indexes in servers that the clients under test are
	// spread over, round-robin: all of them but the publisher's, when
	// there are others.
	clients []int
	// publishOn is the index of the publisher's endpoint (in servers for
	// a client publisher, in apis for API calls), -1 for round-robin.
	publishOn int
}

// endpoints parses Server and API and applies PublishOn.
func (o Options) endpoints() (endpoints, error) {
	var e endpoints
	var errs []error
	servers := SplitList(o.Server)
	if len(servers) == 0 {
		errs = append(errs, errors.New("server: no endpoint"))
	}
	for _, s := range servers {
		t, err := parseTarget(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("server: %w", err))
			continue
		}
		if len(e.servers) > 0 && t.transport() != e.servers[0].transport() {
			errs = append(errs, fmt.Errorf("server: %s: every endpoint must use the same transport (%s)", s, e.servers[0].transport()))
			continue
		}
		e.servers = append(e.servers, t)
	}
	e.apis = SplitList(o.API)
	if len(e.apis) == 0 {
		errs = append(errs, errors.New("api: no base URL"))
	}
	for _, a := range e.apis {
		if _, err := hostOf(a); err != nil {
			errs = append(errs, fmt.Errorf("api: %w", err))
		}
	}
	e.publishOn = o.PublishOn - 1
	if o.PublishOn != 0 {
		list, n := "--server", len(servers)
		if o.publishesViaAPI() {
			list, n = "--api", len(e.apis)
		}
		switch {
		case !o.Scenario.publishes():
			errs = append(errs, fmt.Errorf("publish-on: %s has no publisher", o.Scenario))
		case o.PublishOn < 1 || o.PublishOn > n:
			errs = append(errs, fmt.Errorf("publish-on: want 1 to %d, the endpoints of %s, got %d", n, list, o.PublishOn))
		}
	}
	if len(errs) > 0 {
		return endpoints{}, errors.Join(errs...)
	}
	for i := range e.servers {
		if i != e.publishOn || len(e.servers) == 1 {
			e.clients = append(e.clients, i)
		}
	}
	return e, nil
}

// publishesViaAPI reports whether the run's publisher calls the server API
// rather than publishing from a client connection.
func (o Options) publishesViaAPI() bool {
	return o.Via == ViaAPI || o.Scenario == ScenarioDirect || o.Scenario == ScenarioInbox
}

// clientTarget is the index in servers of the n-th client's endpoint.
func (e endpoints) clientTarget(n int) int { return e.clients[n%len(e.clients)] }

// publisherTargets is the indexes in servers a client publisher uses: the
// one PublishOn names, else the same round-robin as the clients'.
func (e endpoints) publisherTargets() []int {
	if e.publishOn >= 0 && e.publishOn < len(e.servers) {
		return []int{e.publishOn}
	}
	return e.clients
}

// checkLoopback checks every endpoint's host.
func (e endpoints) checkLoopback(ctx context.Context) error {
	for _, t := range e.servers {
		if err := checkLoopback(ctx, t.host); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	for _, a := range e.apis {
		host, _ := hostOf(a) // endpoints checked it
		if err := checkLoopback(ctx, host); err != nil {
			return fmt.Errorf("api: %w", err)
		}
	}
	return nil
}

// hosts returns the hosts of the client endpoints.
func (e endpoints) hosts() []string {
	hosts := make([]string, len(e.servers))
	for i, t := range e.servers {
		hosts[i] = t.host
	}
	return hosts
}

// multi reports whether the run has more than one client endpoint.
func (e endpoints) multi() bool { return len(e.servers) > 1 }
