// Package client is the Go client of Herald, a real-time message push
// server. It speaks Herald protocol version 2 over WebSocket (ws://,
// wss://) or newline-delimited JSON over TCP (tcp://, tcps://).
//
// A Client holds one connection and keeps it: it answers the server's
// pings, presumes the server dead after ping_interval + pong_timeout of
// silence, and on any loss reconnects with exponential backoff and jitter,
// then subscribes again to its channels. It stops only on Close or when the
// server closes the connection with a code that forbids reconnecting
// (3500-3999); then Done is closed and Err returns the *Disconnect.
//
// Against the nodes of a cluster (herald serve --redis), give Dial the
// other nodes too, with WithFallbacks: Dial connects to the first it can
// reach, and a client that loses its connection tries the next URL, round
// the list, with the same backoff. It resumes on the new node where it
// left off on the old one (its channels' positions, its device's inbox,
// the ids it dedupes by), since the nodes share their history and inboxes:
//
//	c, err := client.Dial(ctx, "wss://push-1.example.com/ws",
//		client.WithFallbacks("wss://push-2.example.com/ws", "wss://push-3.example.com/ws"),
//		client.WithDevice("laptop"))
//
// Operations (Subscribe, Unsubscribe, Publish, Send, Broadcast, Ping) may
// run concurrently; each waits for its own reply. A refusal by the server
// is an *Error whose Code is stable:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == client.CodeInvalidChannel {
//		// ...
//	}
//
// Messages, state changes, channels the server unsubscribed the client
// from, and errors that belong to no operation are handed to the handlers
// given to Dial, one at a time and in order, on a goroutine of the client's.
//
// Subscriptions are restored after a reconnect. On a channel whose
// namespace keeps history, messages carry a Position, and the client
// resumes from the last one it received: what was published while it was
// away comes first, in order, with no gap and no duplicate, as long as the
// server still keeps it. Each subscribe's result goes to the subscribed
// handler (WithSubscribedHandler); a Lost one tells the application that
// some messages will never come and it should reload its state. Since
// resumes from a position the application kept across restarts. On other
// channels, messages sent while the client was disconnected are lost.
//
// A client that names its device (WithDevice) gets its user's direct
// messages that the device has not acknowledged, on every connection, and
// acknowledges them once the message handler has returned (or when the
// application calls Ack, with WithManualAck). Delivery is at least once;
// the client drops the messages that come again, by id.
//
// An operation whose connection is lost before its reply fails with
// ErrConnectionLost and is not retried, since the server may have carried
// it out.
package client
