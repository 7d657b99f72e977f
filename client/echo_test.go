package client_test

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
)

// TestNoEcho checks that a message sent with NoEcho reaches everyone it
// addresses but the sending connection, which still receives the messages
// it sends without it.
func TestNoEcho(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *config.Config) { c.ClientBroadcast = true })
	ops := []struct {
		name string
		// setup connects the sender and another connection the message
		// addresses, and returns how the sender sends.
		setup func(t *testing.T, url string, sender, other *recorder) func(context.Context, any, ...client.PublishOption) (string, error)
	}{
		{"publish", func(t *testing.T, url string, sender, other *recorder) func(context.Context, any, ...client.PublishOption) (string, error) {
			ctx := testContext(t)
			alice := dial(t, url, "alice", sender.options()...)
			bob := dial(t, url, "bob", other.options()...)
			for _, c := range []*client.Client{alice, bob} {
				if err := c.Subscribe(ctx, "room:echo"); err != nil {
					t.Fatalf("subscribe: %v", err)
				}
			}
			return func(ctx context.Context, data any, opts ...client.PublishOption) (string, error) {
				return alice.Publish(ctx, "room:echo", data, opts...)
			}
		}},
		{"send to own user", func(t *testing.T, url string, sender, other *recorder) func(context.Context, any, ...client.PublishOption) (string, error) {
			alice := dial(t, url, "alice", sender.options()...)
			dial(t, url, "alice", other.options()...)
			return func(ctx context.Context, data any, opts ...client.PublishOption) (string, error) {
				return alice.Send(ctx, "alice", data, opts...)
			}
		}},
		{"broadcast", func(t *testing.T, url string, sender, other *recorder) func(context.Context, any, ...client.PublishOption) (string, error) {
			alice := dial(t, url, "alice", sender.options()...)
			dial(t, url, "bob", other.options()...)
			return func(ctx context.Context, data any, opts ...client.PublishOption) (string, error) {
				return alice.Broadcast(ctx, data, opts...)
			}
		}},
	}
	transports(t, ts, func(t *testing.T, url string) {
		for _, op := range ops {
			t.Run(op.name, func(t *testing.T) {
				ctx := testContext(t)
				var sender, other recorder
				send := op.setup(t, url, &sender, &other)

				quiet, err := send(ctx, "quiet", client.NoEcho())
				if err != nil {
					t.Fatalf("with NoEcho: %v", err)
				}
				if got := ids(other.waitMessages(t, 1)); got[0] != quiet {
					t.Fatalf("the other connection got %v, want %s", got, quiet)
				}
				// The sender's messages come in order: the one sent without
				// NoEcho would follow the first, were it delivered.
				loud, err := send(ctx, "loud")
				if err != nil {
					t.Fatalf("without NoEcho: %v", err)
				}
				if got := ids(other.waitMessages(t, 2)); got[1] != loud {
					t.Errorf("the other connection got %v, want %s then %s", got, quiet, loud)
				}
				if got := ids(sender.waitMessages(t, 1)); len(got) != 1 || got[0] != loud {
					t.Errorf("the sender got %v, want only %s (not %s, sent with NoEcho)", got, loud, quiet)
				}
			})
		}
	})
}

func ids(ms []client.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}
