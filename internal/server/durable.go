package server

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	redisbroker "github.com/heraldpush/herald/internal/broker/redis"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
	"github.com/heraldpush/herald/internal/store"
)

// expireEvery is how many inbox pushes pass between enforcements of a
// user's inbox caps: an inbox may exceed them by this many messages for a
// moment.
const expireEvery = 16

// storedData is what the store keeps of a message: its push without the
// position the store gives it, which is stamped at delivery.
func storedData(m *protocol.Message) []byte {
	return m.Frame().Payload()
}

// restore decodes a stored message; a record that does not decode is
// damage the server will not deliver.
func restore(r store.Record) (*protocol.Message, error) {
	m := new(protocol.Message)
	if err := json.Unmarshal(r.Data, m); err != nil {
		return nil, err
	}
	return m, nil
}

// storageError is the client's error for a write the store refused: on
// a node of a cluster, the store is Redis.
func (s *Server) storageError() *protocol.Error {
	if s.cluster != nil {
		return protocol.Errorf(protocol.CodeStorageFailed, "the message could not be stored in Redis, so it was not sent; retry later")
	}
	return protocol.Errorf(protocol.CodeStorageFailed, "the message could not be stored, so it was not sent; retry later")
}

// publishStored stores channel messages, all of one channel, in its
// history in one write, then hands them to the channel's lane for
// delivery in offset order. A nil error means they are on disk; on error
// none of them is sent.
func (s *Server) publishStored(ctx context.Context, channel string, ms []*protocol.Message, size int, ttl time.Duration) error {
	if s.cluster != nil {
		return s.publishClustered(ctx, channel, ms, size, ttl)
	}
	l := s.chanLanes.acquire(channel)
	defer s.chanLanes.release(channel, l)
	l.mu.Lock()
	err := l.loadLocked(func() (uint64, string, error) {
		pos, err := s.store.Top(ctx, channel)
		return pos.Offset, pos.Epoch, err
	})
	if err == nil {
		l.writing++
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	var pos store.Position
	if len(ms) == 1 {
		pos, err = s.store.Append(ctx, channel, time.UnixMilli(ms[0].Time), storedData(ms[0]))
	} else {
		data := make([][]byte, len(ms))
		for i, m := range ms {
			data[i] = storedData(m)
		}
		// The batch shares one time: the first message's.
		pos, err = s.store.AppendBatch(ctx, channel, time.UnixMilli(ms[0].Time), data)
	}
	l.mu.Lock()
	live := ms
	if err != nil {
		live = make([]*protocol.Message, len(ms))
	} else {
		for i, m := range ms {
			m.Offset, m.Epoch = pos.Offset+uint64(i), pos.Epoch
		}
	}
	l.stored(pos.Offset, pos.Epoch, live, s.publishLive)
	l.mu.Unlock()
	if err != nil {
		s.counters.storeFailures.Add(1)
		return err
	}
	s.stored(ctx, channel, pos.Offset, len(ms), size, ttl)
	return nil
}

// stored counts n messages stored in channel's history from offset first
// on, and trims the history when it is due.
func (s *Server) stored(ctx context.Context, channel string, first uint64, n, size int, ttl time.Duration) {
	s.counters.historyAppends.Add(int64(n))
	if trimDue(first, uint64(n), size) {
		if _, err := s.store.Trim(ctx, channel, size, time.Now().Add(-ttl)); err != nil {
			s.log.Warn("trim history", "channel", channel, "err", err)
		}
	}
}

// publishClustered stores channel messages in Redis with the script that
// publishes them to the nodes, in offset order: every node, this one
// included, delivers them as they come back (arrive).
func (s *Server) publishClustered(ctx context.Context, channel string, ms []*protocol.Message, size int, ttl time.Duration) error {
	data, live := make([][]byte, len(ms)), make([][]byte, len(ms))
	for i, m := range ms {
		data[i], live[i] = storedData(m), redisbroker.Encode(m)
	}
	// The batch shares one time: the first message's.
	pos, err := s.cluster.store.AppendLive(ctx, channel, time.UnixMilli(ms[0].Time), data, live)
	if err != nil {
		s.counters.storeFailures.Add(1)
		return err
	}
	for i, m := range ms {
		m.Offset, m.Epoch = pos.Offset+uint64(i), pos.Epoch
	}
	s.stored(ctx, channel, pos.Offset, len(ms), size, ttl)
	return nil
}

// trimDue says whether the append of n offsets from first on to a
// history of size messages trims it: about ten times per size, so a
// history exceeds its size by at most a tenth (or by one batch).
func trimDue(first, n uint64, size int) bool {
	every := uint64(max(size/10, 1))
	return (first+n-1)/every > (first-1)/every
}

// sendStored stores a direct message in its recipient's inbox, then hands
// it to the user's lane for delivery in sequence order.
func (s *Server) sendStored(ctx context.Context, m *protocol.Message) error {
	if s.cluster != nil {
		seq, err := s.cluster.store.PushLive(ctx, m.To, m.ID, time.UnixMilli(m.Time), storedData(m), redisbroker.Encode(m))
		if err != nil {
			s.counters.storeFailures.Add(1)
			return err
		}
		m.Seq = seq
		s.pushed(ctx, m)
		return nil
	}
	l := s.userLanes.acquire(m.To)
	defer s.userLanes.release(m.To, l)
	l.mu.Lock()
	err := l.loadLocked(func() (uint64, string, error) {
		seq, err := s.store.Head(ctx, m.To)
		return seq, "", err
	})
	if err == nil {
		l.writing++
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	seq, err := s.store.Push(ctx, m.To, m.ID, time.UnixMilli(m.Time), storedData(m))
	l.mu.Lock()
	m.Seq = seq
	if err != nil {
		m = nil
	}
	l.stored(seq, "", []*protocol.Message{m}, s.publishLive)
	l.mu.Unlock()
	if err != nil {
		s.counters.storeFailures.Add(1)
		return err
	}
	s.pushed(ctx, m)
	return nil
}

// pushed counts a direct message stored in its recipient's inbox,
// schedules its escalation, and holds the inbox to its caps when due.
func (s *Server) pushed(ctx context.Context, m *protocol.Message) {
	s.counters.inboxPushes.Add(1)
	s.escalator.schedule(m.To, time.UnixMilli(m.Time).Add(s.cfg.EscalateAfter))
	if m.Seq%expireEvery == 0 {
		if _, err := s.store.Expire(ctx, m.To, s.inboxLimits()); err != nil {
			s.log.Warn("expire inbox", "user", m.To, "err", err)
		}
	}
}

// publishLive hands a message, stamped and in order, to the broker.
func (s *Server) publishLive(m *protocol.Message) {
	if err := s.broker.Publish(context.Background(), m); err != nil {
		s.log.Error("deliver stored message", "id", m.ID, "err", err)
	}
}

// inboxLimits are the bounds of every inbox now. A receipt is kept as
// long as a message may wait in an inbox: for the inbox TTL after the
// message was accepted.
func (s *Server) inboxLimits() store.InboxLimits {
	before := time.Now().Add(-s.cfg.InboxTTL)
	return store.InboxLimits{
		Before:         before,
		MaxCount:       s.cfg.InboxMaxMessages,
		MaxBytes:       s.cfg.InboxMaxBytes,
		ReceiptsBefore: before,
	}
}

// subscribeHistory subscribes sess to a channel with history: under the
// channel's lane, it replies with the position, queues what the client
// missed when it asked to recover, and joins the live recipients.
func (s *Server) subscribeHistory(ctx context.Context, sess *session.Session, req *protocol.Request, size int, ttl time.Duration, reply func(any)) *protocol.Error {
	l := s.chanLanes.acquire(req.Channel)
	defer s.chanLanes.release(req.Channel, l)
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.loadLocked(func() (uint64, string, error) {
		pos, err := s.store.Top(ctx, req.Channel)
		return pos.Offset, pos.Epoch, err
	})
	if err != nil {
		s.log.Error("read channel position", "channel", req.Channel, "err", err)
		return protocol.Errorf(protocol.CodeStorageFailed, "the channel's history could not be read; retry later")
	}
	res := protocol.SubscribeResult{Offset: l.delivered(), Epoch: l.epoch}
	var backlog []*protocol.Frame
	if req.Offset != nil {
		var ok bool
		backlog, ok, err = s.recover(ctx, req.Channel, *req.Offset, req.Epoch, l, size, ttl)
		if err != nil {
			s.log.Error("recover channel", "channel", req.Channel, "err", err)
			return protocol.Errorf(protocol.CodeStorageFailed, "the channel's history could not be read; retry later")
		}
		res.Recovered, res.Missed = &ok, len(backlog)
		if ok {
			s.counters.recovered.Add(1)
		} else {
			s.counters.notRecovered.Add(1)
		}
	}
	s.hub.Subscribe(sess, req.Channel)
	reply(res)
	s.deliverBacklog(sess, backlog)
	return nil
}

// recover reads what a client at offset from in epoch missed of channel,
// up to what the lane delivered live. It reports false, with nothing to
// send, when the client cannot have it all: another epoch, an offset the
// channel never reached, messages no longer kept, or more than the
// recovery bound. l.mu held.
func (s *Server) recover(ctx context.Context, channel string, from uint64, epoch string, l *lane, size int, ttl time.Duration) ([]*protocol.Frame, bool, error) {
	top := l.delivered()
	switch {
	case epoch != l.epoch || from > top:
		return nil, false, nil
	case from == top:
		return nil, true, nil
	case top-from > uint64(size):
		return nil, false, nil
	}
	recs, _, err := s.store.Read(ctx, channel, store.Range{From: from + 1, Limit: int(top - from)})
	if err != nil {
		return nil, false, err
	}
	if len(recs) == 0 || recs[0].Offset != from+1 || recs[0].Time.Before(time.Now().Add(-ttl)) {
		return nil, false, nil
	}
	frames := make([]*protocol.Frame, 0, len(recs))
	bytes := 0
	for _, r := range recs {
		if r.Offset > top {
			break
		}
		m, err := restore(r)
		if err != nil {
			return nil, false, err
		}
		m.Offset, m.Epoch = r.Offset, l.epoch
		f := m.Frame()
		if bytes += len(f.Payload()); bytes > s.cfg.MaxRecoveryBytes {
			return nil, false, nil
		}
		frames = append(frames, f)
	}
	return frames, true, nil
}

// registerDevice registers a connection that named a device: under its
// user's lane, it joins the registry, replies to the connect with the
// device's inbox state, and queues what the device has not acknowledged.
// Everything the device is sent live comes after, so that a cumulative
// ack never covers a message the device was not sent.
func (s *Server) registerDevice(ctx context.Context, sess *session.Session, reply func(*protocol.InboxState)) *protocol.Error {
	user, device := sess.User(), sess.Identity().Device
	l := s.userLanes.acquire(user)
	defer s.userLanes.release(user, l)
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.loadLocked(func() (uint64, string, error) {
		seq, err := s.store.Head(ctx, user)
		return seq, "", err
	})
	var p store.Pending
	if err == nil {
		_, err = s.store.Expire(ctx, user, s.inboxLimits())
	}
	if err == nil {
		p, err = s.pending(ctx, user, device, l.delivered())
	}
	if err == nil {
		// The device is known from now on: the inbox keeps what it has
		// not acknowledged.
		err = s.store.Seen(ctx, user, device, time.Now())
	}
	if err != nil {
		s.log.Error("read inbox", "user", user, "device", device, "err", err)
		return protocol.Errorf(protocol.CodeStorageFailed, "the inbox could not be read; connect again later")
	}
	frames := make([]*protocol.Frame, 0, len(p.Records))
	var ids []string // for the receipts webhook, when it is on
	for _, r := range p.Records {
		m, err := restore(r)
		if err != nil {
			s.log.Error("read inbox", "user", user, "seq", r.Offset, "err", err)
			return protocol.Errorf(protocol.CodeStorageFailed, "the inbox could not be read; connect again later")
		}
		m.Seq = r.Offset
		frames = append(frames, m.Frame())
		if s.receiptHook != nil {
			ids = append(ids, m.ID)
		}
	}
	if perr := s.register(sess); perr != nil {
		return perr
	}
	reply(&protocol.InboxState{Acked: p.Acked, Pending: len(frames), Missed: p.Missed, New: !p.Known})
	s.deliverBacklog(sess, frames)
	if n := len(p.Records); n > 0 {
		s.receipts.delivered(user, device, p.Records[n-1].Offset)
		s.receiptHook.add(eventDelivered, user, device, p.Records[n-1].Offset, ids)
	}
	return nil
}

// pending reads what device has not acknowledged, up to top, the last
// sequence delivered live; what comes after top is on its way live. The
// inbox was just held to its cap, and whatever was pushed since is above
// top, so one read of the cap's size has it all.
func (s *Server) pending(ctx context.Context, user, device string, top uint64) (store.Pending, error) {
	p, err := s.store.Pending(ctx, user, device, s.cfg.InboxMaxMessages)
	if err != nil {
		return p, err
	}
	for i, r := range p.Records {
		if r.Offset > top {
			p.Records = p.Records[:i]
			break
		}
	}
	return p, nil
}

// ack moves the device's inbox position, and drops what every device of
// the user has now acknowledged.
func (s *Server) ack(ctx context.Context, sess *session.Session, seq uint64) *protocol.Error {
	user, device := sess.User(), sess.Identity().Device
	if device == "" {
		return protocol.Errorf(protocol.CodeNoDevice, "ack needs a device: name one in connect (\"device\")")
	}
	var ids []string
	moved := false
	if s.receiptHook != nil {
		ids, moved = s.ackedIDs(ctx, user, device, seq)
	}
	err := s.store.Ack(ctx, user, device, seq)
	switch {
	case errors.Is(err, store.ErrAckBackwards):
		return protocol.Errorf(protocol.CodeAckBackwards, "seq %d is below what this device acknowledged already", seq)
	case errors.Is(err, store.ErrAckBeyondEnd):
		return protocol.Errorf(protocol.CodeAckBeyondEnd, "seq %d is beyond the newest message of your inbox", seq)
	case err != nil:
		s.log.Error("ack", "user", user, "device", device, "err", err)
		return protocol.Errorf(protocol.CodeStorageFailed, "the acknowledgement could not be stored; send it again later")
	}
	s.counters.acks.Add(1)
	if moved {
		s.receiptHook.add(eventAcked, user, device, seq, ids)
	}
	if _, err := s.store.Expire(ctx, user, s.inboxLimits()); err != nil {
		s.log.Warn("expire inbox", "user", user, "err", err)
	}
	return nil
}

// deliverBacklog queues stored messages to sess and counts them.
func (s *Server) deliverBacklog(sess *session.Session, frames []*protocol.Frame) {
	sess.DeliverBacklog(frames)
	s.counters.deliveries.Add(int64(len(frames)))
	s.counters.backlogMessages.Add(int64(len(frames)))
}
