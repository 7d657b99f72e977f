package server

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	redisbroker "github.com/heraldpush/herald/internal/broker/redis"
	"github.com/heraldpush/herald/internal/protocol"
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

// sendConcurrency bounds the direct messages of one batch stored at once
// (or, on a node of a cluster over one Redis, the chunks): concurrent
// writes share the store's syncs.
const sendConcurrency = 128

// sendChunk is how many direct messages one script stores in Redis.
const sendChunk = 100

// SendBatch accepts direct messages (Kind direct) as Dispatch does each,
// many at once, and returns each one's error, by index. On a node of a
// cluster over a single Redis (not Redis Cluster), one script stores and
// publishes each chunk of sendChunk, where Dispatch takes two commands per
// message; a chunk's messages share their fate.
func (s *Server) SendBatch(ctx context.Context, ms []*protocol.Message) []error {
	errs := make([]error, len(ms))
	var g errgroup.Group
	g.SetLimit(sendConcurrency)
	if s.cluster == nil || s.cfg.InboxTTL <= 0 || !s.cluster.store.Batches() {
		for i, m := range ms {
			g.Go(func() error {
				errs[i] = s.Dispatch(ctx, m)
				return nil
			})
		}
		_ = g.Wait()
		return errs
	}
	now := time.Now()
	for _, m := range ms {
		s.stamp(m, now)
	}
	for start := 0; start < len(ms); start += sendChunk {
		chunk := ms[start:min(start+sendChunk, len(ms))]
		g.Go(func() error {
			ps := make([]redisstore.LivePush, len(chunk))
			for j, m := range chunk {
				ps[j] = redisstore.LivePush{User: m.To, ID: m.ID, Data: storedData(m), Live: redisbroker.Encode(m)}
			}
			seqs, err := s.cluster.store.PushManyLive(ctx, now, ps)
			for j, m := range chunk {
				if err != nil {
					s.counters.storeFailures.Add(1)
					errs[start+j] = fmt.Errorf("%w: %w", errNotStored, err)
					continue
				}
				m.Seq = seqs[j]
				s.pushed(ctx, m)
			}
			return nil
		})
	}
	_ = g.Wait()
	return errs
}
