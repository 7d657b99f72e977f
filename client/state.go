package client

import (
	"fmt"
	"time"
)

// State is where a client is in its life.
type State int32

// Client states. A client goes Connecting -> Connected, then after losing
// the connection Disconnected -> Connecting -> Connected again, as often as
// needed, and ends Closed.
const (
	StateConnecting   State = iota + 1 // dialling and authenticating
	StateConnected                     // connected, subscriptions restored
	StateDisconnected                  // connection lost; waiting to reconnect
	StateClosed                        // stopped for good
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// StateChange reports that the client entered a new state.
type StateChange struct {
	State State
	// Err is why the previous connection or attempt ended (Disconnected),
	// or why the client stopped (Closed; nil after Close). A *Disconnect
	// here carries the server's code and reason.
	Err error
	// Delay is how long the client waits before its next attempt
	// (Disconnected).
	Delay time.Duration
	// Info describes the new connection (Connected).
	Info ConnectInfo
	// URL is the server of the attempt (Connecting) or of the new
	// connection (Connected), with any password in it masked: one of the
	// URLs given to Dial (see WithFallbacks).
	URL string
}

// ConnectInfo is the server's answer to a successful connect.
type ConnectInfo struct {
	// Client is the connection's id on the server.
	Client string
	// User is the authenticated user id: the From of every message this
	// connection sends.
	User string
	// PingInterval is the time between server pings.
	PingInterval time.Duration
	// PongTimeout is how long past a ping interval silence is tolerated.
	PongTimeout time.Duration
	// Device is the device named with WithDevice, as the server took it.
	Device string
	// Inbox is where the device stands in its user's inbox (nil without a
	// device). Its Pending messages follow the connect reply; they may
	// reach the message handler before the state handler hears of the
	// connection, which is reported once the channels are subscribed
	// again.
	Inbox *InboxState
}

// InboxState is where a device stands in its user's inbox when it
// connects.
type InboxState struct {
	// Acked is the device's position: the server has its acknowledgement
	// of every message up to this sequence.
	Acked uint64
	// Pending is how many unacknowledged messages follow, oldest first.
	Pending int
	// Missed counts messages after Acked that the device will never get:
	// they expired, or were dropped for the inbox's cap, before it
	// acknowledged them. An application that keeps state from direct
	// messages should reload it.
	Missed uint64
}

// silence is how long the connection may stay quiet before it is presumed
// dead; 0 if the server does not ping.
func (i ConnectInfo) silence() time.Duration {
	if i.PingInterval <= 0 {
		return 0
	}
	return i.PingInterval + i.PongTimeout
}
