// Package rediskey names what Herald keeps and publishes in Redis, so that
// the Redis store and the Redis broker agree on it. Every key and pub/sub
// channel of one Herald channel (or one user) carries the same hash tag, so
// that on Redis Cluster they live in one hash slot: a Lua script may touch
// all of them at once, and a sharded publication goes to the shard that
// holds the channel's history.
package rediskey

// DefaultPrefix starts every name unless configured otherwise.
const DefaultPrefix = "herald"

// Channel returns the base of the names of channel: prefix:{c:channel}.
// Names are built by appending ":suffix" to it. Whatever channel holds
// (even braces), one channel's names all share one hash tag, since the tag
// is taken from the same leading bytes of each.
func Channel(prefix, channel string) string { return prefix + ":{c:" + channel + "}" }

// User returns the base of the names of user's inbox: prefix:{u:user}.
func User(prefix, user string) string { return prefix + ":{u:" + user + "}" }

// Broadcast is the pub/sub channel of messages to everyone.
func Broadcast(prefix string) string { return prefix + ":{b}:live" }

// Live is the pub/sub channel of the base returned by Channel or User.
func Live(base string) string { return base + ":live" }

// Nodes returns the base of the names that describe the nodes of a
// cluster (liveness, reported totals): prefix:{n}. They share one slot,
// apart from every channel's and user's.
func Nodes(prefix string) string { return prefix + ":{n}" }
