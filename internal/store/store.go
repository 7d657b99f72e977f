// Package store is the contract for what Herald keeps on disk: channel
// history, per-user inboxes of direct messages with a position per device,
// delivery receipts, and idempotency keys. The embedded implementation (internal/store/embedded)
// keeps it in the data directory; a Redis implementation can keep the same
// contract for a cluster. Every implementation runs the conformance test in
// internal/store/storetest.
//
// The store keeps messages as opaque bytes: the caller encodes a message once
// (the encoded protocol.Message) and stores those bytes, so the store does not
// depend on the wire format and never decodes what it keeps. Offsets and
// sequences are assigned by the store, atomically with storing the bytes; the
// caller stamps them on the message it delivers live.
//
// Every write that returns a nil error is durable: on disk (fsync'd) in the
// embedded store. A record becomes readable only once it is durable, so
// nothing a reader sees can be lost by a crash and given to another message.
//
// Append and Push may fail after the record was given its offset: the write
// reached the engine but its sync failed. They then return that offset
// together with the error. A non-zero offset on error means the offset is
// used (no other record gets it while the store stays open) and the record
// may or may not be readable, and may or may not survive a crash; a caller
// that delivers live in offset order skips it. A zero offset on error means
// nothing was stored.
package store

import (
	"context"
	"time"
)

// Record is one stored message.
type Record struct {
	// Offset is the channel offset or the inbox sequence: 1 for the first
	// message, then one more for each message, never reused within an
	// epoch.
	Offset uint64
	// Time is when the message was accepted, as given to Append or Push;
	// trims by age compare it.
	Time time.Time
	// Data is the encoded message.
	Data []byte
}

// Position is where a channel's history stands.
type Position struct {
	// Offset is the offset of the newest message appended (0 when none).
	Offset uint64
	// Epoch names the channel's history: it changes when the history was
	// lost or reset, and offsets are comparable only within one epoch.
	Epoch string
}

// Range selects records of a channel's history.
type Range struct {
	// From is the first offset returned: the lowest going forwards, the
	// highest going backwards, where 0 means the newest.
	From uint64
	// Backwards reads newest first; otherwise oldest first.
	Backwards bool
	// Limit is the most records returned; it must be positive.
	Limit int
}

// History keeps the messages of each channel in order of offset.
type History interface {
	// Append stores data as the next message of channel and returns its
	// offset and the channel's epoch. The offset is assigned atomically with
	// storing: concurrent appends to one channel get distinct offsets with
	// no gap, readable in offset order. On error, a non-zero Offset was used
	// by a record whose sync failed (see the package comment).
	Append(ctx context.Context, channel string, at time.Time, data []byte) (Position, error)
	// AppendBatch stores each of data, in order, as the next messages of
	// channel, in one write with one sync, and returns the offset of the
	// first (the others follow it, one apart) and the channel's epoch. The
	// batch is atomic against other appends: no other record gets an
	// offset between its first and its last. On error it is as Append's:
	// a non-zero Offset means that every offset of the batch was used by
	// a record whose sync failed. An empty data gives ErrEmptyBatch.
	AppendBatch(ctx context.Context, channel string, at time.Time, data [][]byte) (Position, error)
	// Top returns the channel's position. A channel never seen gets its
	// epoch here, at offset 0.
	Top(ctx context.Context, channel string) (Position, error)
	// Read returns the records r selects, and the channel's position at the
	// time of the read. Records trimmed away are not returned: a caller
	// that finds the first record above the offset it asked for has a gap.
	Read(ctx context.Context, channel string, r Range) ([]Record, Position, error)
	// Trim drops the oldest records of channel while more than keep remain
	// or the oldest is older than before (zero: no age limit), and returns
	// how many it dropped. Trimming never changes the epoch, and offsets
	// continue after the dropped ones.
	Trim(ctx context.Context, channel string, keep int, before time.Time) (int, error)
	// Reset drops the channel's whole history and starts a new epoch at
	// offset 0.
	Reset(ctx context.Context, channel string) (Position, error)
	// Channels returns, in byte order, at most limit names of channels
	// that hold records, starting after after ("": from the first). A
	// sweep trims every channel by paging through them, each call after
	// the last name of the one before; channels created meanwhile may or
	// may not be seen.
	Channels(ctx context.Context, after string, limit int) ([]string, error)
}

// InboxLimits bounds one user's inbox.
type InboxLimits struct {
	// Before drops messages older than it, and forgets devices last active
	// before it (zero: no age limit).
	Before time.Time
	// MaxCount and MaxBytes (of Data) cap the inbox; 0 means no cap. The
	// oldest messages are dropped first.
	MaxCount int
	MaxBytes int64
	// ReceiptsBefore drops the receipts of messages accepted before it that
	// are no longer in the inbox (zero: receipts are never dropped, so set
	// it). A message's receipt is kept at least while the message is.
	ReceiptsBefore time.Time
}

// Pending is what a device has not acknowledged.
type Pending struct {
	// Acked is the device's position: every message up to it is
	// acknowledged. A device never seen is at the sequence just before the
	// oldest message kept.
	Acked uint64
	// Missed counts the messages after Acked that were dropped (expired or
	// capped) before the device acknowledged them: they come right before
	// the first record.
	Missed uint64
	// Records are the unacknowledged messages, oldest first.
	Records []Record
	// Known is false for a device the store does not know (never seen, or
	// forgotten): it starts at the oldest message kept, and cannot be told
	// what it missed before.
	Known bool
}

// Device is where one known device of a user stands in the user's inbox.
type Device struct {
	Name string
	// Acked is the device's position: every message up to it is
	// acknowledged.
	Acked uint64
	// Delivered is the newest message handed to the device (at least
	// Acked).
	Delivered uint64
	// Seen is when the device was last active: its last Ack, Delivered or
	// Seen.
	Seen time.Time
}

// Push is one message of PushMany: data for user's inbox, under id.
type Push struct {
	User, ID string
	Data     []byte
}

// CheckPushes returns the first error valid gives for a user or an id of
// ps, so that a PushMany refuses bad input before it stores anything.
func CheckPushes(ps []Push, valid func(string) error) error {
	for _, p := range ps {
		if err := valid(p.User); err != nil {
			return err
		}
		if err := valid(p.ID); err != nil {
			return err
		}
	}
	return nil
}

// ByUser groups xs by the user each is for (as user says): the users in
// the order they first appear, and for each the indexes of its elements
// in xs, in order.
func ByUser[T any](xs []T, user func(T) string) (users []string, idx map[string][]int) {
	idx = make(map[string][]int)
	for i, x := range xs {
		u := user(x)
		if _, ok := idx[u]; !ok {
			users = append(users, u)
		}
		idx[u] = append(idx[u], i)
	}
	return users, idx
}

// PushUser is the user of p, for ByUser.
func PushUser(p Push) string { return p.User }

// Inbox keeps each user's direct messages until every device of the user
// the store knows has acknowledged them, or until they expire. A device is
// known from its first Ack, Delivered or Seen until Expire forgets it.
type Inbox interface {
	// Push stores data as the next message of user's inbox and returns its
	// sequence, assigned atomically with storing (as Append does). id is the
	// message's id, unique across all users; it is stored with the message
	// so that the message's receipt can be found by it. On error, a non-zero
	// sequence was used by a record whose sync failed (see the package
	// comment).
	Push(ctx context.Context, user, id string, at time.Time, data []byte) (uint64, error)
	// PushMany is Push for each of ps, accepted at at: it returns the
	// sequences by index, and a user named more than once gets increasing
	// sequences in the order of ps. An implementation that stores them in
	// one write (the embedded store, a single Redis) gives each user's
	// consecutive sequences, and the messages share their fate: on an
	// error none was stored, except that, as with Push, a write whose sync
	// failed returns the sequences it used with the error. One over a
	// network, whose answer may be lost, may have stored any of them.
	PushMany(ctx context.Context, at time.Time, ps []Push) ([]uint64, error)
	// Ack moves device's position to seq: every message up to seq is
	// acknowledged (cumulative), and the device becomes known. seq below
	// the position gives ErrAckBackwards, above the inbox's last sequence
	// ErrAckBeyondEnd; acknowledging the position again changes nothing.
	// The store's clock gives the time receipts report for the
	// acknowledgement.
	Ack(ctx context.Context, user, device string, seq uint64) error
	// Head returns the sequence of the newest message pushed to user's
	// inbox (0 when none): the next Push gets a higher one.
	Head(ctx context.Context, user string) (uint64, error)
	// Pending returns at most limit messages after device's position,
	// oldest first, with the gap the device missed. It does not move the
	// position.
	Pending(ctx context.Context, user, device string, limit int) (Pending, error)
	// Seen records that device was active at the time at (connected, say)
	// and makes it known, without moving its position. Like Delivered, it
	// is not synced.
	Seen(ctx context.Context, user, device string, at time.Time) error
	// Expire first forgets the devices last active (Ack, Delivered or
	// Seen) before lim.Before, so that a device lost for good does not
	// keep messages forever; a forgotten device that comes back starts
	// like a new one. It then drops user's messages that every known
	// device has acknowledged (when at least one device is known), then
	// the oldest while beyond lim, and the receipts past
	// lim.ReceiptsBefore. It returns how many messages it dropped.
	Expire(ctx context.Context, user string, lim InboxLimits) (int, error)
	// Devices returns the devices of user the store knows, by name, with
	// their positions. It writes nothing.
	Devices(ctx context.Context, user string) ([]Device, error)
	// Users returns, in byte order, at most limit names of users that
	// hold messages, devices or receipts, starting after after ("": from
	// the first); a sweep pages through them as through Channels and
	// calls Expire on each.
	Users(ctx context.Context, after string, limit int) ([]string, error)
}

// DeviceReceipt is when one device got a message; a zero time: not yet.
type DeviceReceipt struct {
	Device string
	// Delivered is when the message was first handed to the device (a
	// Delivered call covering it, or else its acknowledgement).
	Delivered time.Time
	// Acked is when the device first acknowledged it.
	Acked time.Time
}

// Receipt is what became of one direct message.
type Receipt struct {
	ID   string
	User string
	// Seq is the message's sequence in User's inbox.
	Seq uint64
	// Accepted is the time given to Push.
	Accepted time.Time
	// Devices are the user's devices the store knows, and devices since
	// forgotten that had received the message, by name.
	Devices []DeviceReceipt
}

// Receipts answers who got a direct message and when. A message's receipt
// outlives the message in the inbox, up to InboxLimits.ReceiptsBefore.
type Receipts interface {
	// Delivered records that device was handed every message of user's
	// inbox up to seq (cumulative), at the time at, and makes the device
	// known. A seq at or below what was recorded before changes nothing;
	// above the inbox's last sequence it gives ErrAckBeyondEnd. It is meant
	// to be called every time messages are sent to a device, so it is
	// cheap: it is not synced to disk, and a crash may lose the latest
	// Delivered records (never an acknowledgement).
	Delivered(ctx context.Context, user, device string, seq uint64, at time.Time) error
	// Receipt returns the receipt of the message pushed with id, or
	// ErrNotFound when no message had that id or its receipt was dropped.
	Receipt(ctx context.Context, id string) (Receipt, error)
}

// Escalations keeps, per user, how far the fallback for unacknowledged
// direct messages has got: the escalation position, the highest inbox
// sequence already escalated or found acknowledged. A server that restarts
// resumes after it, so that no message is escalated twice.
type Escalations interface {
	// Escalated returns user's escalation position (0 until set) and at
	// most limit messages of the inbox after it, oldest first. Messages
	// dropped meanwhile are not returned: the first may be above the
	// position plus one.
	Escalated(ctx context.Context, user string, limit int) (uint64, []Record, error)
	// SetEscalated moves user's escalation position from from to seq,
	// and reports whether it did: a position that is no longer from (the
	// node of a cluster that moved it first posts those events), or a seq
	// at or below from, changes nothing. A seq above the inbox's last
	// sequence gives ErrAckBeyondEnd. Unlike Delivered, it is synced.
	SetEscalated(ctx context.Context, user string, from, seq uint64) (bool, error)
}

// Idempotency remembers the first result of a request for a window, so that
// a retry returns it instead of acting twice.
type Idempotency interface {
	// Remember stores result under key unless key holds a result younger
	// than window (measured from now). It returns the result that key holds
	// afterwards and whether it was stored by this call. A key held with a
	// different bodyHash gives ErrIdempotencyConflict. Concurrent calls
	// with one key store exactly one result.
	Remember(ctx context.Context, key string, bodyHash, result []byte, now time.Time, window time.Duration) (stored []byte, fresh bool, err error)
	// Forget drops key, so that a request whose action failed after
	// Remember can be retried.
	Forget(ctx context.Context, key string) error
	// ForgetBefore drops the keys whose result was stored before before,
	// and returns how many it dropped; a sweep calls it, so that keys past
	// their window do not pile up.
	ForgetBefore(ctx context.Context, before time.Time) (int, error)
}

// Store is everything kept on disk.
type Store interface {
	History
	Inbox
	Receipts
	Escalations
	Idempotency
	// Close flushes and releases the store; later calls give ErrClosed.
	Close() error
}
