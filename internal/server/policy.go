package server

import (
	"slices"
	"strings"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// policy applies the per-namespace channel rules.
type policy struct {
	rules map[string]config.Namespace
	def   config.Namespace
}

func newPolicy(namespaces []config.Namespace) policy {
	p := policy{rules: make(map[string]config.Namespace)}
	for _, ns := range config.DefaultNamespaces() {
		p.rules[ns.Name] = ns
	}
	for _, ns := range namespaces {
		p.rules[ns.Name] = ns
	}
	p.def = p.rules["*"]
	delete(p.rules, "*")
	return p
}

func (p policy) rule(channel string) config.Namespace {
	ns := protocol.Namespace(channel)
	if r, ok := p.rules[ns]; ok {
		return r
	}
	return p.def
}

// canSubscribe decides whether id may subscribe to channel. A grant in the
// token allows any channel it matches.
func (p policy) canSubscribe(id session.Identity, channel string) *protocol.Error {
	if auth.MatchChannel(id.Grants, channel) {
		return nil
	}
	r := p.rule(channel)
	switch r.Subscribe {
	case config.SubscribeAny:
		return nil
	case config.SubscribeOwner:
		if owner, ok := strings.CutPrefix(channel, protocol.Namespace(channel)+":"); ok && owner == id.User {
			return nil
		}
		return protocol.Errorf(protocol.CodeForbidden, "channel %q belongs to another user", channel)
	}
	return protocol.Errorf(protocol.CodeForbidden, "subscribing to %q needs a grant in your token", channel)
}

// canPublish decides whether a client may publish to channel: the namespace
// must allow client publishing, and the client must be allowed to
// subscribe there.
func (p policy) canPublish(id session.Identity, channel string) *protocol.Error {
	if p.rule(channel).Publish != config.PublishClients {
		return protocol.Errorf(protocol.CodeForbidden, "only the server may publish to %q", channel)
	}
	return p.canSubscribe(id, channel)
}

// historyNamespaces lists the namespaces that keep history, "*" for the
// default rule, for the log.
func (p policy) historyNamespaces() []string {
	var names []string
	for name, r := range p.rules {
		if r.HistorySize > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if p.def.HistorySize > 0 {
		names = append(names, "*")
	}
	return names
}
