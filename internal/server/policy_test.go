package server

import (
	"testing"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/session"
)

// Namespaces, like channel names and grant patterns, are case-sensitive:
// VIP:x is in namespace VIP, not vip, and follows the rule for namespaces
// not listed.
func TestPolicyIsCaseSensitive(t *testing.T) {
	t.Parallel()
	open := newPolicy([]config.Namespace{{Name: "vip", Subscribe: config.SubscribeGrant, Publish: config.PublishClients}})
	closed := newPolicy([]config.Namespace{
		{Name: "vip", Subscribe: config.SubscribeGrant, Publish: config.PublishClients},
		{Name: "*", Subscribe: config.SubscribeGrant, Publish: config.PublishServer},
	})
	granted := session.Identity{User: "alice", Grants: []string{"vip:*"}}
	nobody := session.Identity{User: "bob"}
	cases := []struct {
		name    string
		p       policy
		id      session.Identity
		channel string
		sub     bool
		pub     bool
	}{
		{"vip needs a grant", open, nobody, "vip:x", false, false},
		{"granted vip", open, granted, "vip:x", true, true},
		// VIP is unlisted: the default rule (any, clients) applies.
		{"VIP follows the default rule", open, nobody, "VIP:x", true, true},
		// With a closed default, a grant for vip:* does not open VIP:x.
		{"closed default, no grant", closed, nobody, "VIP:x", false, false},
		{"closed default, vip grant is not a VIP grant", closed, granted, "VIP:x", false, false},
		{"closed default, granted vip", closed, granted, "vip:x", true, true},
		// user: channels belong to their owner; User: is another namespace.
		{"user is the owner's", open, nobody, "user:alice", false, false},
		{"User is not user", open, nobody, "User:alice", true, true},
		{"owner match is exact", open, session.Identity{User: "Alice"}, "user:alice", false, false},
	}
	for _, tc := range cases {
		if got := tc.p.canSubscribe(tc.id, tc.channel) == nil; got != tc.sub {
			t.Errorf("%s: subscribe %s as %s: allowed=%v, want %v", tc.name, tc.channel, tc.id.User, got, tc.sub)
		}
		if got := tc.p.canPublish(tc.id, tc.channel) == nil; got != tc.pub {
			t.Errorf("%s: publish %s as %s: allowed=%v, want %v", tc.name, tc.channel, tc.id.User, got, tc.pub)
		}
	}
}
