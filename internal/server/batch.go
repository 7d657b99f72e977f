package server

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/heraldpush/herald/internal/protocol"
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
