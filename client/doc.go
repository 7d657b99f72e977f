// Package client is the Go client of Herald, a real-time message push
// server. It speaks Herald protocol version 1 over WebSocket (ws://,
// wss://) or newline-delimited JSON over TCP (tcp://, tcps://).
//
// A Client holds one connection and keeps it: it answers the server's
// pings, presumes the server dead after ping_interval + pong_timeout of
// silence, and on any loss reconnects with exponential backoff and jitter,
// then subscribes again to its channels. It stops only on Close or when the
// server closes the connection with a code that forbids reconnecting
// (3500-3999); then Done is closed and Err returns the *Disconnect.
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
// Subscriptions are restored after a reconnect, but messages sent while the
// client was disconnected are not replayed: protocol version 1 has no
// history. An operation whose connection is lost before its reply fails
// with ErrConnectionLost and is not retried, since the server may have
// carried it out.
package client
