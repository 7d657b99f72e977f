package server

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	redisbroker "github.com/heraldpush/herald/internal/broker/redis"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/store"
	redisstore "github.com/heraldpush/herald/internal/store/redis"
)

// batchConcurrency bounds the channels of one batch written at once.
const batchConcurrency = 16

// DispatchBatch accepts channel messages (Kind channel) as Dispatch does
// each, and returns each one's error, by index. The messages of one
// channel keep their order: in a channel with history they are stored in
// one write, at consecutive offsets, and delivered in that order; in a
// channel without history they are published one after the other.
// Channels are written concurrently. The messages of one channel share
// their fate: all stored, or none (each with an error wrapping
// errNotStored).
func (s *Server) DispatchBatch(ctx context.Context, ms []*protocol.Message) []error {
	now := time.Now()
	var order []string
	groups := make(map[string][]int)
	for i, m := range ms {
		s.stamp(m, now)
		if _, ok := groups[m.Channel]; !ok {
			order = append(order, m.Channel)
		}
		groups[m.Channel] = append(groups[m.Channel], i)
	}
	errs := make([]error, len(ms))
	var g errgroup.Group
	g.SetLimit(batchConcurrency)
	for _, ch := range order {
		idx := groups[ch]
		g.Go(func() error {
			size, ttl := s.policy.rule(ch).History()
			if size == 0 {
				for _, i := range idx {
					errs[i] = s.publish(ctx, ms[i])
				}
				return nil
			}
			group := make([]*protocol.Message, len(idx))
			for j, i := range idx {
				group[j] = ms[i]
			}
			if err := s.publishStored(ctx, ch, group, size, ttl); err != nil {
				err = fmt.Errorf("%w: %w", errNotStored, err)
				for _, i := range idx {
					errs[i] = err
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	return errs
}

// sendConcurrency bounds the chunks of one batch stored at once (or, when
// messages are not stored in chunks, the recipients sent to at once):
// concurrent writes share the store's syncs.
const sendConcurrency = 128

// sendChunk is about how many direct messages one write stores: one
// batch of the embedded store, or one script in Redis. A chunk holds all
// of a recipient's messages, so one named many times makes it bigger.
const sendChunk = 100

// SendBatch accepts direct messages (Kind direct) as Dispatch does each,
// many at once, and returns each one's error, by index. A user named more
// than once gets the messages in the order named. With the inbox on,
// messages are stored in chunks of about sendChunk, each in one write (on
// a single node, one commit and one sync of the embedded store; on a node
// of a cluster over a single Redis, not Redis Cluster, one script that
// also publishes), where Dispatch takes a write per message; a chunk's
// messages share their fate.
func (s *Server) SendBatch(ctx context.Context, ms []*protocol.Message) []error {
	errs := make([]error, len(ms))
	users, idx := store.ByUser(ms, func(m *protocol.Message) string { return m.To })
	var g errgroup.Group
	g.SetLimit(sendConcurrency)
	if s.cfg.InboxTTL <= 0 || (s.cluster != nil && !s.cluster.store.Batches()) {
		for _, user := range users {
			g.Go(func() error {
				for _, i := range idx[user] {
					errs[i] = s.Dispatch(ctx, ms[i])
				}
				return nil
			})
		}
		_ = g.Wait()
		return errs
	}
	now := time.Now()
	at := time.UnixMilli(now.UnixMilli()) // as Dispatch stores a message's time
	for _, m := range ms {
		s.stamp(m, now)
	}
	send := func(chunk []int) {
		g.Go(func() error {
			cms := make([]*protocol.Message, len(chunk))
			for j, i := range chunk {
				cms[j] = ms[i]
			}
			cerrs := make([]error, len(chunk))
			if s.cluster != nil {
				s.sendChunkLive(ctx, at, cms, cerrs)
			} else {
				s.sendChunkLocal(ctx, at, cms, cerrs)
			}
			for j, i := range chunk {
				errs[i] = cerrs[j]
			}
			return nil
		})
	}
	var chunk []int
	for _, user := range users {
		chunk = append(chunk, idx[user]...)
		if len(chunk) >= sendChunk {
			send(chunk)
			chunk = nil
		}
	}
	if len(chunk) > 0 {
		send(chunk)
	}
	_ = g.Wait()
	return errs
}

// sendChunkLive stores and publishes a chunk of direct messages with one
// script in Redis, and puts each one's error in errs, by index.
func (s *Server) sendChunkLive(ctx context.Context, at time.Time, chunk []*protocol.Message, errs []error) {
	ps := make([]redisstore.LivePush, len(chunk))
	for j, m := range chunk {
		ps[j] = redisstore.LivePush{User: m.To, ID: m.ID, Data: storedData(m), Live: redisbroker.Encode(m)}
	}
	seqs, err := s.cluster.store.PushManyLive(ctx, at, ps)
	if err == nil {
		for j, m := range chunk {
			m.Seq = seqs[j]
		}
	}
	s.chunkStored(ctx, chunk, err, errs)
}

// sendChunkLocal stores a chunk of direct messages in one write of the
// store, and delivers each through its recipient's lane, as sendStored
// does one message: the lanes are held from before the write, so that
// every recipient's messages leave in sequence order whichever write ends
// first.
func (s *Server) sendChunkLocal(ctx context.Context, at time.Time, chunk []*protocol.Message, errs []error) {
	ps := make([]store.Push, len(chunk))
	for i, m := range chunk {
		ps[i] = store.Push{User: m.To, ID: m.ID, Data: storedData(m)}
	}
	users, msgs := store.ByUser(ps, store.PushUser)
	lanes := make([]*lane, 0, len(users))
	var err error
	for _, user := range users {
		l := s.userLanes.acquire(user)
		l.mu.Lock()
		err = l.loadLocked(func() (uint64, string, error) {
			seq, err := s.store.Head(ctx, user)
			return seq, "", err
		})
		if err == nil {
			l.writing++
		}
		l.mu.Unlock()
		if err != nil {
			s.userLanes.release(user, l)
			break
		}
		lanes = append(lanes, l)
	}
	var seqs []uint64
	if err == nil {
		seqs, err = s.store.PushMany(ctx, at, ps)
	}
	for k, l := range lanes {
		idx := msgs[users[k]]
		var first uint64
		ms := make([]*protocol.Message, len(idx))
		if seqs != nil {
			first = seqs[idx[0]]
			for j, i := range idx {
				chunk[i].Seq = seqs[i]
				if err == nil {
					ms[j] = chunk[i]
				}
			}
		}
		l.mu.Lock()
		l.stored(first, "", ms, s.publishLive)
		l.mu.Unlock()
		s.userLanes.release(users[k], l)
	}
	s.chunkStored(ctx, chunk, err, errs)
}

// chunkStored ends the sends of a chunk that one write stored, their
// sequences set, or not (err), and puts each one's error in errs, by
// index. The messages may be on their way to their recipients already:
// it only reads them.
func (s *Server) chunkStored(ctx context.Context, chunk []*protocol.Message, err error, errs []error) {
	for j, m := range chunk {
		if err != nil {
			s.counters.storeFailures.Add(1)
			errs[j] = fmt.Errorf("%w: %w", errNotStored, err)
			continue
		}
		s.pushed(ctx, m)
	}
}
