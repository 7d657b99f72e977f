package bench

import (
	"context"
	"net/http"
	"time"
)

// runInbox sends Messages direct messages to each of Clients users while
// none is connected (the fill: every message is in its user's inbox, on
// disk, when its call is answered), reads the server's memory before and
// after, then connects Online of the users with a device: each must
// receive its pending messages, and acknowledges them once it has them
// all. The measured phase runs from the first dial to the last message
// received.
func (r *runner) runInbox(ctx context.Context) {
	o := r.o
	r.res.Publisher = ViaAPI
	users := make([]string, o.Clients)
	for i := range users {
		users[i] = o.user(i)
	}
	mem := &Memory{SettleSeconds: o.Settle.Seconds()}
	mem.RSSEmptyBytes, mem.HeapEmptyBytes, mem.GC = r.settledMemory(ctx)

	s := &directSender{api: r.sendAPI, users: users, batch: o.Batch, size: o.Size, errs: &r.sink.errs}
	r.fill("storing", int64(o.Clients)*int64(o.Messages), func() { s.run(ctx, o.Messages, o.APIConcurrency, o.Rate) }, s.counts)
	if r.proc != nil {
		var gc bool
		mem.RSSFilledBytes, mem.HeapFilledBytes, gc = r.settledMemory(ctx)
		mem.GC = mem.GC && gc
		mem.Pending = r.res.Sent
		if mem.Pending > 0 {
			mem.RSSPerMessageBytes = float64(mem.RSSFilledBytes-mem.RSSEmptyBytes) / float64(mem.Pending)
		}
		r.res.Memory = mem
	}
	if o.Online == 0 || r.res.Sent == 0 || ctx.Err() != nil {
		return
	}

	pending := int64(o.Messages)
	spec := o.everyClient(only(""))
	spec.count, spec.device, spec.ackAfter = o.Online, BenchDevice, pending
	r.awaitComeback(ctx, "coming online", pending, spec, func(c *client) (time.Time, bool) {
		return c.connectedAt, c.inbox.Pending == pending
	})
	r.res.Dropped = r.fleet.dropped()
	r.recordDeliveries(int64(o.Online)*pending, pending)
}

// settledMemory lets the server's memory settle, and reads its resident
// size and Go heap in use (0 when its metrics do not tell). When the
// server's profiler is enabled it first collects the garbage (gc true),
// which a heap profile with gc=1 does.
func (r *runner) settledMemory(ctx context.Context) (rss, heap int64, gc bool) {
	if r.proc == nil {
		return 0, 0, false
	}
	gcCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	gc = r.api.doAll(gcCtx, http.MethodGet, "/debug/pprof/heap?gc=1", func(int) any { return nil }) == nil
	cancel()
	t := time.NewTimer(r.o.Settle)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	if s, ok := r.sampleProc(); ok {
		rss = s.RSSBytes
	}
	if n, ok := r.api.scanSum(ctx, "/metrics", 4<<20, "go_memstats_heap_inuse_bytes "); ok {
		heap = int64(n)
	}
	return rss, heap, gc
}
