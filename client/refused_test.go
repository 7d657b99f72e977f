package client_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
)

// Many connects refused at once each get their reply. The server shuts
// down writing after a refusal, and the client answers with a close frame;
// the WebSocket engine used to answer that frame itself, fail to write
// (writing was shut down) and close the descriptor off the event loop,
// whose pending event for the number could then close the next connection
// given that number before its reply: under load, about one dial in a few
// thousand lost its reply.
func TestRefusedConnectsGetTheirReply(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *config.Config) { c.Insecure, c.TokenSecret, c.ConnectsPerIP = false, testSecret, 0 })
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 60 {
				c, err := client.Dial(testContext(t), ts.wsURL(), client.WithUser("alice"))
				if err == nil {
					_ = c.Close()
					t.Error("a connect without a token was let in")
					return
				}
				var e *client.Error
				if !errors.As(err, &e) || e.Code != client.CodeUnauthorized {
					t.Errorf("got %v, want *client.Error unauthorized", err)
					return
				}
			}
		})
	}
	wg.Wait()
}
