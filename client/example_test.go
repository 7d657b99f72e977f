package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/heraldpush/herald/client"
)

// Connect with a token, follow a channel, and publish to it. The client
// stays connected across server restarts until Close.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, "ws://127.0.0.1:7600/ws", // or tcp://127.0.0.1:7601
		client.WithToken(os.Getenv("HERALD_TOKEN")),
		client.WithMessageHandler(func(m client.Message) {
			fmt.Printf("%s message %s from %s: %s\n", m.Kind, m.ID, m.From, m.Data)
		}),
		client.WithStateHandler(func(s client.StateChange) {
			fmt.Println("herald:", s.State, s.Err)
		}),
	)
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Close()

	if err := c.Subscribe(ctx, "room:42"); err != nil {
		var refused *client.Error
		if errors.As(err, &refused) && refused.Code == client.CodeForbidden {
			fmt.Println("not allowed in room:42")
		}
		return
	}
	id, err := c.Publish(ctx, "room:42", map[string]string{"text": "hello"})
	if err != nil {
		fmt.Println("publish:", err)
		return
	}
	fmt.Println("published", id)
}

// Follow a channel with history and a device's inbox, from where the
// application stopped last time: nothing is missed while the server keeps
// it, and the application hears when it cannot be recovered.
func Example_resume() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The position of the last message processed, as the application kept
	// it (in a file, a database) the last time it ran.
	var last client.Position

	c, err := client.Dial(ctx, "ws://127.0.0.1:7600/ws",
		client.WithToken(os.Getenv("HERALD_TOKEN")),
		client.WithDevice("laptop"), // the user's direct messages wait for this device
		client.WithMessageHandler(func(m client.Message) {
			fmt.Printf("%s message %s: %s\n", m.Kind, m.ID, m.Data)
			if m.Kind == client.KindChannel {
				last = m.Position() // keep it, to pass to Since next time
			}
			// Once this returns, the client acknowledges a direct message.
		}),
		client.WithSubscribedHandler(func(s client.Subscription) {
			if s.Lost() {
				fmt.Println("some messages of", s.Channel, "are lost: reload the state")
			}
		}),
		client.WithStateHandler(func(s client.StateChange) {
			if s.State == client.StateConnected && s.Info.Inbox != nil {
				fmt.Println(s.Info.Inbox.Pending, "direct messages were waiting")
			}
		}),
	)
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Close() // sends the last acknowledgement
	if err := c.Subscribe(ctx, "chat:lobby", client.Since(last)); err != nil {
		fmt.Println("subscribe:", err)
	}
}
