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
