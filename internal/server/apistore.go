package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/store"
)

// What the server API reads and writes in the store: idempotency keys,
// receipts, channel history and inboxes.

// Remember keeps an idempotency key for the configured window.
func (b backend) Remember(ctx context.Context, key string, hash, result []byte) ([]byte, bool, error) {
	held, fresh, err := b.store.Remember(ctx, key, hash, result, time.Now(), b.cfg.IdempotencyWindow)
	if errors.Is(err, store.ErrIdempotencyConflict) {
		return nil, false, api.ErrKeyReused
	}
	return held, fresh, err
}

func (b backend) Forget(ctx context.Context, key string) error {
	return b.store.Forget(ctx, key)
}

func (b backend) Stored(ctx context.Context, id string) (bool, error) {
	if b.cfg.InboxTTL == 0 {
		return false, nil
	}
	_, err := b.store.Receipt(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// noInbox answers a read of what a server without inboxes does not keep.
func noInbox() error {
	return &api.Error{Status: http.StatusNotFound, Code: "no_inbox",
		Message: "this server keeps no inboxes (inbox-ttl is 0): direct messages are not stored, and have no receipts"}
}

// readFailed is the answer to a read the store failed.
func (b backend) readFailed(what string, err error) error {
	b.log.Error("read the store", "what", what, "err", err)
	return &api.Error{Status: http.StatusServiceUnavailable, Code: string(protocol.CodeStorageFailed),
		Message: "the store could not be read; retry later"}
}

func (b backend) Receipt(ctx context.Context, id string) (api.Receipt, error) {
	if b.cfg.InboxTTL == 0 {
		return api.Receipt{}, noInbox()
	}
	r, err := b.store.Receipt(ctx, id)
	if err == nil {
		// What a connection would drop now is dropped before the answer,
		// so that a device told pending would get the message.
		if err = b.holdInbox(ctx, r.User); err == nil {
			r, err = b.store.Receipt(ctx, id)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return api.Receipt{}, api.ErrNotFound
	}
	if err != nil {
		return api.Receipt{}, b.readFailed("receipt", err)
	}
	out := api.Receipt{ID: r.ID, User: r.User, Seq: r.Seq, Accepted: r.Accepted.UnixMilli()}
	for _, d := range r.Devices {
		dr := api.DeviceReceipt{Device: d.Device, State: api.StatePending}
		if !d.Delivered.IsZero() {
			dr.State, dr.Delivered = api.StateDelivered, d.Delivered.UnixMilli()
		}
		if !d.Acked.IsZero() {
			dr.State, dr.Acked = api.StateAcked, d.Acked.UnixMilli()
		}
		if dr.State == api.StatePending {
			missed, err := b.missed(ctx, r, d.Device)
			if err != nil {
				return api.Receipt{}, b.readFailed("receipt", err)
			}
			if missed {
				dr.State = api.StateMissed
			}
		}
		out.Devices = append(out.Devices, dr)
	}
	return out, nil
}

// holdInbox drops what user's inbox keeps beyond its caps and age, as a
// connection of a device does before it reads, so that a read tells what
// the device would get.
func (b backend) holdInbox(ctx context.Context, user string) error {
	_, err := b.store.Expire(ctx, user, b.inboxLimits())
	return err
}

// missed tells whether device, which was not handed message r, will never
// get it: the message is past the inbox's age, or device's position is
// beyond it (it became known after the message was dropped, or
// acknowledged past it after), or the message was dropped before the
// device acknowledged it.
func (b backend) missed(ctx context.Context, r store.Receipt, device string) (bool, error) {
	if r.Accepted.Before(b.inboxLimits().Before) {
		return true, nil
	}
	p, err := b.store.Pending(ctx, r.User, device, 1)
	if err != nil {
		return false, err
	}
	return r.Seq <= p.Acked+p.Missed, nil
}

func (b backend) History(ctx context.Context, channel string, q api.HistoryQuery) (api.History, error) {
	size, ttl := b.policy.rule(channel).History()
	if size == 0 {
		return api.History{}, &api.Error{Status: http.StatusNotFound, Code: "no_history",
			Message: fmt.Sprintf("channel %q keeps no history: its namespace has no history-size", channel)}
	}
	recs, pos, err := b.store.Read(ctx, channel, store.Range{From: q.From, Backwards: q.Newest, Limit: q.Limit})
	if err != nil {
		return api.History{}, b.readFailed("history", err)
	}
	h := api.History{Channel: channel, Offset: pos.Offset, Epoch: pos.Epoch}
	// Messages past the history's age are gone for subscribers, though
	// the sweep may not have dropped them yet.
	oldest := time.Now().Add(-ttl)
	for _, r := range recs {
		if r.Time.Before(oldest) {
			continue
		}
		m, err := restore(r)
		if err != nil {
			return api.History{}, b.readFailed("history", err)
		}
		m.Offset, m.Epoch = r.Offset, pos.Epoch
		h.Messages = append(h.Messages, m)
	}
	if len(recs) == q.Limit {
		last := recs[len(recs)-1].Offset
		switch {
		case q.Newest && last > 1:
			next := last - 1
			h.Next = &next
		case !q.Newest && last < pos.Offset:
			next := last + 1
			h.Next = &next
		}
	}
	return h, nil
}

func (b backend) Inbox(ctx context.Context, user, device string, limit int) (api.Inbox, error) {
	if b.cfg.InboxTTL == 0 {
		return api.Inbox{}, noInbox()
	}
	if err := b.holdInbox(ctx, user); err != nil {
		return api.Inbox{}, b.readFailed("inbox", err)
	}
	head, err := b.store.Head(ctx, user)
	if err != nil {
		return api.Inbox{}, b.readFailed("inbox", err)
	}
	in := api.Inbox{User: user, Head: head}
	if device == "" {
		ds, err := b.store.Devices(ctx, user)
		if err != nil {
			return api.Inbox{}, b.readFailed("inbox", err)
		}
		for _, d := range ds {
			in.Devices = append(in.Devices, api.DeviceState{Device: d.Name, Acked: d.Acked, Delivered: d.Delivered, Seen: d.Seen.UnixMilli()})
		}
		return in, nil
	}
	p, err := b.store.Pending(ctx, user, device, limit)
	if err != nil {
		return api.Inbox{}, b.readFailed("inbox", err)
	}
	dp := &api.DevicePending{Device: device, Known: p.Known, Acked: p.Acked, Missed: p.Missed}
	// Messages past the inbox's age are dropped before a device gets
	// them, though the sweep may not have dropped them yet.
	oldest := b.inboxLimits().Before
	for _, r := range p.Records {
		if r.Time.Before(oldest) {
			dp.Missed++
			continue
		}
		m, err := restore(r)
		if err != nil {
			return api.Inbox{}, b.readFailed("inbox", err)
		}
		m.Seq = r.Offset
		dp.Messages = append(dp.Messages, m)
	}
	in.Device = dp
	return in, nil
}
