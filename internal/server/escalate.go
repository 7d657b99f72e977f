package server

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/store"
)

// eventUnacked is the events webhook's event for a direct message that no
// device of its recipient acknowledged within --escalate-after.
const eventUnacked = "message.unacknowledged"

// Unacked is what message.unacknowledged adds to an event.
type Unacked struct {
	ID string `json:"id"`
	// InboxSeq is the message's sequence in the recipient's inbox (Seq
	// is the event's).
	InboxSeq uint64          `json:"inbox_seq"`
	From     string          `json:"from,omitempty"`
	Sent     int64           `json:"ts"` // when the message was accepted, Unix milliseconds
	Data     json.RawMessage `json:"data"`
	// Devices are the recipient's devices, none of which acknowledged the
	// message; empty when the user has none.
	Devices []unackedDevice `json:"devices"`
}

// unackedDevice says whether one device was handed the message.
type unackedDevice struct {
	Device    string `json:"device"`
	Delivered bool   `json:"delivered"`
	// DeliveredAt is when it was handed over, Unix milliseconds (0: not).
	DeliveredAt int64 `json:"delivered_at,omitempty"`
}

// Timing of the escalator.
const (
	// escalateBatch is how many messages of one user one store read takes.
	escalateBatch = 100
	// escalateRetry is the pause before a user whose inbox could not be
	// read or whose position could not be stored is looked at again.
	escalateRetry = 5 * time.Second
	// escalateUsersPage is how many users one read lists at start.
	escalateUsersPage = 1000
)

// escalator posts message.unacknowledged for each direct message that no
// device of its recipient acknowledged within after. What it has done
// lives in the store, as each user's escalation position: the highest
// inbox sequence escalated or found acknowledged. In memory it keeps only,
// per user with messages after the position, when the earliest of them is
// due, so it holds one entry per such user, however many messages wait.
// One goroutine (run) does the work; schedule is called from delivery.
//
// A nil *escalator is off: every method returns at once.
type escalator struct {
	st    store.Store
	hook  *presenceHook
	after time.Duration
	log   *slog.Logger

	mu    sync.Mutex
	due   map[string]time.Time // per user, when to look at its inbox
	queue dueQueue             // the same, by time; an entry that disagrees with due is stale
	wake  chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

func newEscalator(after time.Duration, hook *presenceHook, log *slog.Logger) *escalator {
	if after <= 0 || hook == nil {
		return nil
	}
	return &escalator{hook: hook, after: after, log: log, due: make(map[string]time.Time), wake: make(chan struct{}, 1)}
}

// start runs the escalator on st until stop or ctx ends; goFn runs the
// goroutine where the server tracks it.
func (e *escalator) start(ctx context.Context, st store.Store, goFn func(func())) {
	if e == nil {
		return
	}
	ctx, e.cancel = context.WithCancel(ctx)
	e.st, e.done = st, make(chan struct{})
	goFn(func() {
		defer close(e.done)
		e.run(ctx)
	})
}

// stop ends the escalator and waits for it, so that it posts nothing
// after the webhook's last try at shutdown.
func (e *escalator) stop() {
	if e == nil || e.cancel == nil {
		return
	}
	e.cancel()
	<-e.done
}

// schedule notes that user has a message due at at. Only the earliest
// time per user is kept: the messages after it are found in the store.
func (e *escalator) schedule(user string, at time.Time) {
	if e == nil {
		return
	}
	e.mu.Lock()
	if d, ok := e.due[user]; ok && !at.Before(d) {
		e.mu.Unlock()
		return
	}
	e.due[user] = at
	heap.Push(&e.queue, dueEntry{at: at, user: user})
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// next removes and returns a user whose time has come, or else how long
// until the next is due (an hour when none is).
func (e *escalator) next(now time.Time) (string, time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.queue.Len() > 0 {
		top := e.queue[0]
		if d, ok := e.due[top.user]; !ok || !d.Equal(top.at) {
			heap.Pop(&e.queue)
			continue
		}
		if top.at.After(now) {
			return "", top.at.Sub(now)
		}
		heap.Pop(&e.queue)
		delete(e.due, top.user)
		return top.user, 0
	}
	return "", time.Hour
}

func (e *escalator) run(ctx context.Context) {
	e.resume(ctx)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		user, wait := e.next(time.Now())
		if user != "" {
			e.escalate(ctx, user)
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// resume schedules, at start, every user with messages after its
// escalation position: those due while the server was down are looked at
// once.
func (e *escalator) resume(ctx context.Context) {
	after := ""
	for ctx.Err() == nil {
		users, err := e.st.Users(ctx, after, escalateUsersPage)
		if err != nil {
			e.log.Error("escalations: list users; unacknowledged messages stored before this start are not escalated", "err", err)
			return
		}
		for _, u := range users {
			_, recs, err := e.st.Escalated(ctx, u, 1)
			switch {
			case err != nil:
				e.log.Warn("escalations: read inbox", "user", u, "err", err)
				e.schedule(u, time.Now().Add(escalateRetry))
			case len(recs) > 0:
				e.schedule(u, recs[0].Time.Add(e.after))
			}
		}
		if len(users) < escalateUsersPage {
			return
		}
		after = users[len(users)-1]
	}
}

// escalate looks at user's messages after its escalation position: each
// due is either acknowledged by some device (cancelled) or posted; the
// position then moves past them, and the user is scheduled again for the
// first message not yet due.
//
// The position is stored before the events are queued: a message is
// escalated at most once, and an event queued but not posted when the
// server crashes is lost (see docs/hooks.md).
func (e *escalator) escalate(ctx context.Context, user string) {
	for {
		pos, recs, err := e.st.Escalated(ctx, user, escalateBatch)
		if err != nil {
			e.retry(ctx, user, "read inbox", err)
			return
		}
		now := time.Now()
		last := pos
		var events []hookEvent
		var later time.Time
		stuck := false
		for _, r := range recs {
			if due := r.Time.Add(e.after); due.After(now) {
				later = due
				break
			}
			ev, fire, err := e.check(ctx, user, r)
			if err != nil {
				stuck = true
				break
			}
			if fire {
				events = append(events, ev)
			}
			last = r.Offset
		}
		if last > pos {
			moved, err := e.st.SetEscalated(ctx, user, pos, last)
			if err != nil {
				e.retry(ctx, user, "store the escalation position", err)
				return
			}
			if !moved {
				// Another node of the cluster escalated them first: look
				// again from where it left the position.
				continue
			}
			for _, ev := range events {
				e.hook.post(user, ev)
			}
		}
		switch {
		case stuck:
			// A receipt could not be read: the rest waits.
			if ctx.Err() == nil {
				e.schedule(user, now.Add(escalateRetry))
			}
			return
		case !later.IsZero():
			e.schedule(user, later)
			return
		case len(recs) < escalateBatch:
			return
		}
	}
}

// retry logs a failure to escalate user's messages and looks again later,
// unless the escalator is stopping.
func (e *escalator) retry(ctx context.Context, user, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	e.log.Warn("escalations: "+what, "user", user, "err", err, "retry_in", escalateRetry)
	e.schedule(user, time.Now().Add(escalateRetry))
}

// check says whether the message r of user goes unacknowledged: no
// device of the user acknowledged it. A record that does not decode, or
// whose receipt is gone, is skipped as damaged or expired.
func (e *escalator) check(ctx context.Context, user string, r store.Record) (hookEvent, bool, error) {
	m, err := restore(r)
	if err != nil {
		e.log.Error("escalations: a stored message does not decode; not escalated", "user", user, "seq", r.Offset, "err", err)
		return hookEvent{}, false, nil
	}
	rc, err := e.st.Receipt(ctx, m.ID)
	if errors.Is(err, store.ErrNotFound) {
		return hookEvent{}, false, nil
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("escalations: read receipt", "user", user, "id", m.ID, "err", err)
		}
		return hookEvent{}, false, err
	}
	u := &Unacked{ID: m.ID, InboxSeq: r.Offset, From: m.From, Sent: m.Time, Data: m.Data, Devices: []unackedDevice{}}
	for _, d := range rc.Devices {
		if !d.Acked.IsZero() {
			return hookEvent{}, false, nil
		}
		ud := unackedDevice{Device: d.Device, Delivered: !d.Delivered.IsZero()}
		if ud.Delivered {
			ud.DeliveredAt = d.Delivered.UnixMilli()
		}
		u.Devices = append(u.Devices, ud)
	}
	return hookEvent{Type: eventUnacked, Unacked: u}, true, nil
}

// dueEntry is one user's time in the escalator's queue.
type dueEntry struct {
	at   time.Time
	user string
}

// dueQueue is a min-heap of entries by time.
type dueQueue []dueEntry

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q dueQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *dueQueue) Push(x any)        { *q = append(*q, x.(dueEntry)) }
func (q *dueQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*q = old[:len(old)-1]
	return x
}
