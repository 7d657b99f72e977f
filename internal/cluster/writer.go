package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/rediskey"
)

// run is the writer: it applies queued writes as they come and
// heartbeats every beatEvery, until ctx ends.
func (r *Registry) run(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(r.beatEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			r.flush(ctx)
		case <-tick.C:
			r.beat(ctx)
		}
	}
}

// flush writes what is queued.
func (r *Registry) flush(ctx context.Context) {
	r.mu.Lock()
	ws := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.ttl)
	defer cancel()
	if err := r.apply(ctx, latest(ws), r.gen); err != nil {
		r.mu.Lock()
		r.needResync(err)
		r.mu.Unlock()
	}
}

// beat heartbeats, or resyncs if that is due or the heartbeat is refused.
func (r *Registry) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.ttl)
	defer cancel()
	r.mu.Lock()
	why := r.resync
	r.mu.Unlock()
	if why == nil {
		ok, err := r.heartbeat(ctx, true)
		switch {
		case err != nil:
			r.log.Warn("cluster: heartbeat failed", "node", r.node, "err", err)
			return
		case ok:
			return
		}
		why = errRefused
	}
	r.log.Info("cluster: resync", "node", r.node, "reason", why.Error())
	if err := r.rewrite(ctx); err != nil {
		r.log.Warn("cluster: resync failed", "node", r.node, "err", err)
	}
}

// rewrite writes the node's whole presence with a new generation, then
// puts that generation in force with a heartbeat. On failure the next
// heartbeat tries again.
func (r *Registry) rewrite(ctx context.Context) error {
	r.mu.Lock()
	ws := r.snapshot()
	r.resync, r.pending = nil, nil
	r.mu.Unlock()
	r.gen++
	err := r.apply(ctx, ws, r.gen)
	if err == nil {
		_, err = r.heartbeat(ctx, false)
	}
	if err != nil {
		r.mu.Lock()
		r.needResync(err)
		r.mu.Unlock()
		return errorf("write the node's presence", err)
	}
	return nil
}

// heartbeat writes the node's record; with check, only if the node is
// live with the generation in force, and it reports whether it was.
func (r *Registry) heartbeat(ctx context.Context, check bool) (bool, error) {
	stats, err := json.Marshal(r.stats())
	if err != nil {
		return false, err
	}
	flag := "0"
	if check {
		flag = "1"
	}
	n, err := heartbeatScript.Exec(ctx, r.client, r.nodes[:], []string{
		r.node, strconv.FormatUint(r.gen, 10), string(stats), ms(r.ttl), ms(forgetAfter), flag,
	}).AsInt64()
	return n == 1, err
}

// apply writes ws (a count of 0 deletes the entry) with generation gen,
// in pipelined batches.
func (r *Registry) apply(ctx context.Context, ws []write, gen uint64) error {
	cmds := make(rueidis.Commands, 0, min(len(ws), batchSize))
	for i, w := range ws {
		cmds = append(cmds, r.command(w, gen))
		if len(cmds) < batchSize && i < len(ws)-1 {
			continue
		}
		for _, res := range r.client.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				return err
			}
		}
		cmds = cmds[:0]
	}
	return nil
}

// command is the HSET or HDEL of w.
func (r *Registry) command(w write, gen uint64) rueidis.Completed {
	key, field := r.entry(w.channel, w.user, r.node)
	if w.count <= 0 {
		return r.client.B().Hdel().Key(key).Field(field).Build()
	}
	var v string
	if w.channel == "" {
		v = fmt.Sprintf("%d %d %d %s", gen, w.count, w.at, w.info)
	} else {
		v = fmt.Sprintf("%d %d", gen, w.count)
	}
	return r.client.B().Hset().Key(key).FieldValue().FieldValue(field, v).Build()
}

// entry returns the hash and field of node's entry for user, or for
// user in channel if channel is not "".
func (r *Registry) entry(channel, user, node string) (key, field string) {
	if channel == "" {
		return rediskey.User(r.prefix, user) + ":pres", node
	}
	return rediskey.Channel(r.prefix, channel) + ":pres", node + "\x00" + user
}

// latest keeps the last write of each entry of ws, which are in the order
// they were queued.
func latest(ws []write) []write {
	type id struct{ channel, user string }
	seen := make(map[id]bool, len(ws))
	out := ws[:0:0]
	for i := len(ws) - 1; i >= 0; i-- {
		k := id{ws[i].channel, ws[i].user}
		if !seen[k] {
			seen[k] = true
			out = append(out, ws[i])
		}
	}
	return out
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
