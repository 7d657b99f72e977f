// Package bench is Herald's load generator: it opens many real client
// connections to a running server over WebSocket or raw TCP, drives one of a
// few scenarios (idle connections, channel fan-out, direct messages through
// the server API, connection churn) and measures what the server did:
// handshakes, deliveries (expected against received, which must match
// exactly), end-to-end latency from a send timestamp the sender puts in each
// payload, and, for a server on the same machine, its CPU time and memory.
//
// Run executes one scenario and returns a Result, which marshals to the JSON
// that `herald bench --json` prints; WriteText and WriteHTML render it for
// people. Nothing here needs a terminal: progress goes to an optional writer.
//
// The load tool is not the server: each connection has one goroutine that
// reads, but buffers are kept small (a shared pool for WebSocket writes, a
// 4 KiB read buffer) so that tens of thousands of idle connections stay
// cheap. Run is safe for concurrent use; it keeps no package state.
package bench
