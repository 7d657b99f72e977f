package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// record is what Redis holds of a node.
type record struct {
	beat  time.Time
	live  bool
	gen   uint64
	stats Stats
}

// records reads the record of every node, live or dead.
func (r *Registry) records(ctx context.Context) (map[string]record, error) {
	v, err := nodesScript.Exec(ctx, r.client, r.nodes[:], nil).AsStrSlice()
	if err != nil {
		return nil, errorf("read nodes", err)
	}
	if len(v)%3 != 1 {
		return nil, errorf("read nodes", errMalformed)
	}
	now, _ := strconv.ParseInt(v[0], 10, 64)
	recs := make(map[string]record, len(v)/3)
	for i := 1; i < len(v); i += 3 {
		beat, _ := strconv.ParseFloat(v[i+1], 64)
		rec := record{beat: time.UnixMilli(int64(beat)), live: int64(beat) > now-r.ttl.Milliseconds()}
		gen, stats, _ := strings.Cut(v[i+2], " ")
		rec.gen, _ = strconv.ParseUint(gen, 10, 64)
		json.Unmarshal([]byte(stats), &rec.stats)
		recs[v[i]] = rec
	}
	return recs, nil
}

// verdict is what a reader makes of an entry.
type verdict int

const (
	ignore verdict = iota // not counted, but perhaps not stale either
	count                 // counted
	stale                 // not counted, and may be deleted
)

// judge says whether node's entry of generation gen counts. Entries of a
// generation newer than the one on record are being written by a resync:
// they are ignored but kept.
func judge(recs map[string]record, node string, gen uint64) verdict {
	rec, ok := recs[node]
	switch {
	case !ok:
		return ignore
	case rec.live && gen == rec.gen:
		return count
	case gen < rec.gen || !rec.live && gen == rec.gen:
		return stale
	}
	return ignore
}

// sweep deletes the fields of key that were found stale, unless they
// changed since; they were read as fields[i] -> fields[i+1]. It is best
// effort: whatever it leaves, readers ignore.
func (r *Registry) sweep(ctx context.Context, key string, fields []string) {
	if len(fields) == 0 {
		return
	}
	if err := sweepScript.Exec(ctx, r.client, []string{key}, fields).Error(); err != nil {
		r.log.Debug("cluster: delete stale entries", "key", key, "err", err)
	}
}

// userEntry is one node's entry of a user: "GEN COUNT AT INFO".
type userEntry struct {
	gen   uint64
	count int
	at    int64
	info  json.RawMessage
}

func parseUser(v string) (userEntry, bool) {
	f := strings.SplitN(v, " ", 4)
	if len(f) != 4 {
		return userEntry{}, false
	}
	var e userEntry
	var err [3]error
	e.gen, err[0] = strconv.ParseUint(f[0], 10, 64)
	e.count, err[1] = strconv.Atoi(f[1])
	e.at, err[2] = strconv.ParseInt(f[2], 10, 64)
	if f[3] != "" {
		e.info = json.RawMessage(f[3])
	}
	return e, err == [3]error{}
}

// presence sums the entries of one user's hash that count: the number of
// connections, and the info of the latest connect. It sweeps the stale
// ones.
func (r *Registry) presence(ctx context.Context, key string, h map[string]string, recs map[string]record) (int, json.RawMessage) {
	var n int
	var latest userEntry
	var gone []string
	for node, v := range h {
		e, ok := parseUser(v)
		if !ok {
			continue
		}
		switch judge(recs, node, e.gen) {
		case count:
			n += e.count
			if latest.info == nil || e.at > latest.at {
				latest = e
			}
		case stale:
			gone = append(gone, node, v)
		}
	}
	r.sweep(ctx, key, gone)
	return n, latest.info
}

// User returns how many connections user has over the live nodes, and
// the info of the latest of them (nil if none).
func (r *Registry) User(ctx context.Context, user string) (connections int, info json.RawMessage, err error) {
	recs, err := r.records(ctx)
	if err != nil {
		return 0, nil, err
	}
	key, _ := r.entry("", user, "")
	h, err := r.client.Do(ctx, r.client.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		return 0, nil, errorf("read user", err)
	}
	connections, info = r.presence(ctx, key, h, recs)
	return connections, info, nil
}

// Channel returns the users subscribed to channel on the live nodes,
// sorted by name.
func (r *Registry) Channel(ctx context.Context, channel string) ([]Member, error) {
	recs, err := r.records(ctx)
	if err != nil {
		return nil, err
	}
	key, _ := r.entry(channel, "", "")
	h, err := r.client.Do(ctx, r.client.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		return nil, errorf("read channel", err)
	}
	sums := make(map[string]int)
	var gone []string
	for field, v := range h {
		node, user, ok1 := strings.Cut(field, "\x00")
		gen, n, ok2 := strings.Cut(v, " ")
		g, err1 := strconv.ParseUint(gen, 10, 64)
		c, err2 := strconv.Atoi(n)
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			continue
		}
		switch judge(recs, node, g) {
		case count:
			sums[user] += c
		case stale:
			gone = append(gone, field, v)
		}
	}
	r.sweep(ctx, key, gone)
	members := make([]Member, 0, len(sums))
	for user, c := range sums {
		members = append(members, Member{User: user, Connections: c})
	}
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.User, b.User) })
	if err := r.infos(ctx, members, recs); err != nil {
		return nil, err
	}
	return members, nil
}

// infos fills in the Info of each member, reading their user entries in
// one pipeline.
func (r *Registry) infos(ctx context.Context, members []Member, recs map[string]record) error {
	if len(members) == 0 {
		return nil
	}
	cmds := make([]string, len(members))
	for i, m := range members {
		cmds[i], _ = r.entry("", m.User, "")
	}
	for start := 0; start < len(members); start += batchSize {
		end := min(start+batchSize, len(members))
		batch := make([]rueidis.Completed, 0, end-start)
		for _, key := range cmds[start:end] {
			batch = append(batch, r.client.B().Hgetall().Key(key).Build())
		}
		for i, res := range r.client.DoMulti(ctx, batch...) {
			h, err := res.AsStrMap()
			if err != nil {
				return errorf("read users", err)
			}
			_, members[start+i].Info = r.presence(ctx, cmds[start+i], h, recs)
		}
	}
	return nil
}

// Stats returns the sums of the totals last reported by the live nodes.
func (r *Registry) Stats(ctx context.Context) (Totals, error) {
	recs, err := r.records(ctx)
	if err != nil {
		return Totals{}, err
	}
	var t Totals
	for _, rec := range recs {
		if rec.live {
			t.Nodes++
			t.Connections += rec.stats.Connections
			t.Users += rec.stats.Users
			t.Channels += rec.stats.Channels
		}
	}
	return t, nil
}

// Nodes returns the live nodes, sorted by id.
func (r *Registry) Nodes(ctx context.Context) ([]Node, error) {
	recs, err := r.records(ctx)
	if err != nil {
		return nil, err
	}
	var nodes []Node
	for id, rec := range recs {
		if rec.live {
			nodes = append(nodes, Node{ID: id, Heartbeat: rec.beat, Stats: rec.stats})
		}
	}
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	return nodes, nil
}

// Elsewhere returns how many connections user has on the live nodes other
// than this one: a node that sees a user's first connection, or its last
// one go, asks it to tell whether the user's presence begins or ends
// across the cluster.
func (r *Registry) Elsewhere(ctx context.Context, user string) (int, error) {
	recs, err := r.records(ctx)
	if err != nil {
		return 0, err
	}
	key, _ := r.entry("", user, "")
	h, err := r.client.Do(ctx, r.client.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		return 0, errorf("read user", err)
	}
	delete(h, r.node)
	n, _ := r.presence(ctx, key, h, recs)
	return n, nil
}
