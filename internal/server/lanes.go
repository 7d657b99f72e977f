package server

import (
	"hash/maphash"
	"maps"
	"slices"
	"sync"

	"github.com/heraldpush/herald/internal/protocol"
)

// A lane puts the stored messages of one channel, or of one user's inbox,
// in order for live delivery, and is the seam between stored and live
// messages for a connection that catches up.
//
// Concurrent publishers store their messages at once, so that the store
// commits them in one sync, and the store hands out offsets in the order
// it took the messages; but the publishers learn their offsets in any
// order. Each hands its message to the lane, which delivers in offset
// order: the message with the next offset goes out at once, a later one
// waits for the ones before it. An offset whose write failed never comes;
// when no write is in flight, nothing can fill a hole any more, so the
// lane delivers what waits, in order, across the holes.
//
// Live delivery happens under the lane's lock, and so does a connection's
// catching up (reading what it missed up to the last offset delivered,
// queueing it, joining the live recipients): no message can be delivered
// between the two, so none is missed or sent twice at the seam.
type lane struct {
	mu      sync.Mutex
	refs    int // holders between acquire and release; under the lanes' shard lock
	loaded  bool
	epoch   string
	next    uint64 // the offset delivered next: everything below is delivered or lost
	writing int    // stores in flight
	waiting map[uint64]*protocol.Message
	// In a cluster, messages come from Redis already in order (see
	// arrived); filling is set while the missing ones are read from the
	// store, at least up to until.
	filling bool
	until   uint64
}

// loadLocked sets the lane's position from the store on first use: top
// is the newest offset stored, all of it delivered (or lost) by the time
// no lane holds the name. mu held.
func (l *lane) loadLocked(load func() (uint64, string, error)) error {
	if l.loaded {
		return nil
	}
	top, epoch, err := load()
	if err != nil {
		return err
	}
	l.next, l.epoch, l.loaded = top+1, epoch, true
	return nil
}

// delivered is the last offset delivered live. mu held.
func (l *lane) delivered() uint64 { return l.next - 1 }

// stored hands the lane the messages of one write, to which the store
// gave the consecutive offsets from first on in epoch (first 0: the write
// failed and used no offset; a nil message: its write failed after it was
// given its offset), delivers what is now in order with deliver, and ends
// the write begun by writing++. mu held.
func (l *lane) stored(first uint64, epoch string, ms []*protocol.Message, deliver func(*protocol.Message)) {
	l.writing--
	if first != 0 {
		if epoch != l.epoch {
			// The history was reset under us: a new epoch starts over.
			l.epoch, l.next = epoch, first
			clear(l.waiting)
		}
		for i, m := range ms {
			off := first + uint64(i)
			if off < l.next {
				continue
			}
			if l.waiting == nil {
				l.waiting = make(map[uint64]*protocol.Message)
			}
			l.waiting[off] = m
		}
	}
	for {
		m, ok := l.waiting[l.next]
		if !ok {
			break
		}
		delete(l.waiting, l.next)
		l.next++
		if m != nil {
			deliver(m)
		}
	}
	if l.writing == 0 && len(l.waiting) > 0 {
		// Holes left by failed writes: nothing will fill them now.
		offs := make([]uint64, 0, len(l.waiting))
		for off := range l.waiting {
			offs = append(offs, off)
		}
		slices.Sort(offs)
		for _, off := range offs {
			if m := l.waiting[off]; m != nil {
				deliver(m)
			}
		}
		l.next = offs[len(offs)-1] + 1
		clear(l.waiting)
	}
}

// arrived takes a message of a cluster, which Redis hands every node in
// offset order, at offset pos in epoch. The next offset is delivered at
// once and one below it dropped (it was read from the store already). One
// above it waits: the messages between were lost on the way (the link to
// Redis broke), and arrived reports them as missing, from..to, unless a
// fill is already under way. mu held.
func (l *lane) arrived(m *protocol.Message, pos uint64, epoch string, deliver func(*protocol.Message)) (from, to uint64, gap bool) {
	if epoch != l.epoch {
		// The history was reset: a new epoch starts over.
		l.epoch, l.next, l.until = epoch, pos, 0
		clear(l.waiting)
	}
	switch {
	case pos < l.next:
		return 0, 0, false
	case pos == l.next && len(l.waiting) == 0:
		l.next++
		deliver(m)
		return 0, 0, false
	}
	if l.waiting == nil {
		l.waiting = make(map[uint64]*protocol.Message)
	}
	l.waiting[pos] = m
	if l.filling {
		return 0, 0, false
	}
	l.filling = true
	return l.next, pos - 1, true
}

// expect tells the lane that its channel's history reached top in epoch:
// the fill reads up to there. It reports whether a fill must start (none
// runs, and something is missing). mu held.
func (l *lane) expect(top uint64, epoch string) bool {
	if epoch != l.epoch || top < l.next {
		return false
	}
	l.until = max(l.until, top)
	if l.filling {
		return false
	}
	l.filling = true
	return true
}

// hole delivers what waits in order, then returns the offsets the fill
// reads next: those missing before the first message that waits, or up
// to until. False ends the fill. mu held.
func (l *lane) hole(deliver func(*protocol.Message)) (from, to uint64, ok bool) {
	l.deliverWaiting(deliver)
	to = l.until
	if len(l.waiting) > 0 {
		to = slices.Min(slices.Collect(maps.Keys(l.waiting))) - 1
	}
	if to < l.next {
		l.filling = false
		return 0, 0, false
	}
	return l.next, to, true
}

// fetched hands the lane a message the fill read from the store. mu held.
func (l *lane) fetched(m *protocol.Message, pos uint64) {
	if pos < l.next {
		return
	}
	if _, ok := l.waiting[pos]; !ok {
		if l.waiting == nil {
			l.waiting = make(map[uint64]*protocol.Message)
		}
		l.waiting[pos] = m
	}
}

// skipTo delivers, in order, what waits below pos, and moves the lane to
// pos: the messages missing below it are gone for good. mu held.
func (l *lane) skipTo(pos uint64, deliver func(*protocol.Message)) {
	if pos <= l.next {
		return
	}
	below := make([]uint64, 0, len(l.waiting))
	for off := range l.waiting {
		if off < pos {
			below = append(below, off)
		}
	}
	slices.Sort(below)
	for _, off := range below {
		m := l.waiting[off]
		delete(l.waiting, off)
		deliver(m)
	}
	l.next = pos
}

// deliverWaiting delivers the messages that wait from next on, in order,
// up to the first missing. mu held.
func (l *lane) deliverWaiting(deliver func(*protocol.Message)) {
	for {
		m, ok := l.waiting[l.next]
		if !ok {
			return
		}
		delete(l.waiting, l.next)
		l.next++
		deliver(m)
	}
}

// giveUp delivers everything that waits, in order, across the holes, and
// ends the fill: for what cannot be read back. mu held.
func (l *lane) giveUp(deliver func(*protocol.Message)) {
	if len(l.waiting) > 0 {
		l.skipTo(slices.Max(slices.Collect(maps.Keys(l.waiting)))+1, deliver)
	}
	l.filling, l.until = false, 0
}

// lanes holds the lanes in use, by name. A lane exists while someone holds
// it: between writes, and for names no one publishes to, nothing is kept.
type lanes struct {
	seed   maphash.Seed
	shards [64]laneShard
}

type laneShard struct {
	mu sync.Mutex
	m  map[string]*lane
}

func newLanes() *lanes {
	ls := &lanes{seed: maphash.MakeSeed()}
	for i := range ls.shards {
		ls.shards[i].m = make(map[string]*lane)
	}
	return ls
}

func (ls *lanes) shard(name string) *laneShard {
	return &ls.shards[maphash.String(ls.seed, name)%uint64(len(ls.shards))]
}

// acquire returns name's lane, held until release.
func (ls *lanes) acquire(name string) *lane {
	sh := ls.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l := sh.m[name]
	if l == nil {
		l = &lane{}
		sh.m[name] = l
	}
	l.refs++
	return l
}

// release lets go of name's lane; the last holder drops it.
func (ls *lanes) release(name string, l *lane) {
	sh := ls.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(sh.m, name)
	}
}

// peek returns name's lane when someone holds it, nil otherwise.
func (ls *lanes) peek(name string) *lane {
	sh := ls.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[name]
}

// releaseName lets go of name's lane, acquired without keeping it.
func (ls *lanes) releaseName(name string) {
	sh := ls.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if l := sh.m[name]; l != nil {
		if l.refs--; l.refs == 0 {
			delete(sh.m, name)
		}
	}
}

// len counts the lanes held, for tests.
func (ls *lanes) len() int {
	n := 0
	for i := range ls.shards {
		sh := &ls.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
