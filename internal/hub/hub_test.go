package hub

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

type fakeSub struct {
	user string
	got  atomic.Int64
}

func (f *fakeSub) User() string            { return f.user }
func (f *fakeSub) Deliver(*protocol.Frame) { f.got.Add(1) }
func newSub(user string) *fakeSub          { return &fakeSub{user: user} }
func frameOf(data string) *protocol.Frame {
	m := protocol.Message{ID: "id", Kind: protocol.KindChannel, Channel: "c", Data: []byte(data)}
	return m.Frame()
}

func TestRegistry(t *testing.T) {
	h := New()
	a1, a2, b := newSub("alice"), newSub("alice"), newSub("bob")
	for _, s := range []*fakeSub{a1, a2, b} {
		if !h.Register(s, 2) {
			t.Fatal("register refused")
		}
	}
	if h.Register(newSub("alice"), 2) {
		t.Fatal("third alice connection accepted past the limit of 2")
	}
	h.Subscribe(a1, "room:1")
	h.Subscribe(b, "room:1")
	if h.Subscribe(b, "room:1") {
		t.Fatal("double subscribe reported as new")
	}
	f := frameOf(`1`)
	if n := h.Publish("room:1", f, Except{}); n != 2 {
		t.Fatalf("publish reached %d", n)
	}
	if n := h.SendToUser("alice", f, Except{}); n != 2 {
		t.Fatalf("send reached %d", n)
	}
	if n := h.Broadcast(f, Except{}); n != 3 {
		t.Fatalf("broadcast reached %d", n)
	}
	if a1.got.Load() != 3 || a2.got.Load() != 2 || b.got.Load() != 2 {
		t.Fatalf("deliveries a1=%d a2=%d b=%d", a1.got.Load(), a2.got.Load(), b.got.Load())
	}
	if st := h.Stats(); st != (Stats{Connections: 3, Users: 2, Channels: 1}) {
		t.Fatalf("stats %+v", st)
	}
	h.Unregister(a1, []string{"room:1"})
	h.Unregister(a1, []string{"room:1"}) // idempotent
	h.Unregister(a2, nil)
	h.Unregister(b, []string{"room:1"})
	if st := h.Stats(); st != (Stats{}) {
		t.Fatalf("not empty after unregistering all: %+v", st)
	}
}

// Large sets switch to an index and back without losing members.
func TestSetGrowAndShrink(t *testing.T) {
	var s set
	subs := make([]*fakeSub, 100)
	for i := range subs {
		subs[i] = newSub(fmt.Sprint(i))
		if !s.add(subs[i]) {
			t.Fatal("add")
		}
	}
	for i := 0; i < 100; i += 2 {
		if !s.remove(subs[i]) {
			t.Fatalf("remove %d", i)
		}
	}
	for i := range subs {
		if got, want := s.find(subs[i]) >= 0, i%2 == 1; got != want {
			t.Fatalf("member %d: present=%v", i, got)
		}
	}
	for i := 1; i < 100; i += 2 {
		s.remove(subs[i])
	}
	if s.len() != 0 || s.index != nil {
		t.Fatalf("len %d index %v", s.len(), s.index != nil)
	}
}

func TestConcurrentUse(t *testing.T) {
	h := New()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				s := newSub(fmt.Sprintf("u%d", (w*200+i)%37))
				h.Register(s, 0)
				ch := fmt.Sprintf("c%d", i%11)
				h.Subscribe(s, ch)
				h.Publish(ch, frameOf(`1`), Except{})
				h.Broadcast(frameOf(`2`), Except{})
				h.Unregister(s, []string{ch})
			}
		}()
	}
	wg.Wait()
	if st := h.Stats(); st != (Stats{}) {
		t.Fatalf("leftovers: %+v", st)
	}
}

// Exclusions leave out one connection, every connection of one user, or
// both, from each kind of fan-out; the count is of connections reached.
func TestExcept(t *testing.T) {
	h := New()
	a1, a2, b, c := newSub("alice"), newSub("alice"), newSub("bob"), newSub("carol")
	for _, s := range []*fakeSub{a1, a2, b, c} {
		h.Register(s, 0)
		h.Subscribe(s, "room")
	}
	f := frameOf(`1`)
	cases := []struct {
		name    string
		deliver func() int
		want    [4]int64 // a1, a2, b, c, cumulative
	}{
		{"publish except a connection", func() int { return h.Publish("room", f, Except{Sub: a1}) }, [4]int64{0, 1, 1, 1}},
		{"publish except a user", func() int { return h.Publish("room", f, Except{User: "alice"}) }, [4]int64{0, 1, 2, 2}},
		{"publish except both", func() int { return h.Publish("room", f, Except{Sub: b, User: "alice"}) }, [4]int64{0, 1, 2, 3}},
		{"send except a connection of the user", func() int { return h.SendToUser("alice", f, Except{Sub: a2}) }, [4]int64{1, 1, 2, 3}},
		{"send except the user", func() int { return h.SendToUser("alice", f, Except{User: "alice"}) }, [4]int64{1, 1, 2, 3}},
		{"broadcast except a connection", func() int { return h.Broadcast(f, Except{Sub: c}) }, [4]int64{2, 2, 3, 3}},
	}
	wantN := []int{3, 2, 1, 1, 0, 3}
	for i, tc := range cases {
		if n := tc.deliver(); n != wantN[i] {
			t.Errorf("%s: reached %d, want %d", tc.name, n, wantN[i])
		}
		got := [4]int64{a1.got.Load(), a2.got.Load(), b.got.Load(), c.got.Load()}
		if got != tc.want {
			t.Fatalf("%s: deliveries so far %v, want %v", tc.name, got, tc.want)
		}
	}
}

func BenchmarkPublishFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		h := New()
		subs := make([]*fakeSub, n)
		for i := range n {
			subs[i] = newSub(fmt.Sprint(i))
			h.Register(subs[i], 0)
			h.Subscribe(subs[i], "room")
		}
		f := frameOf(`{"text":"hello"}`)
		for _, ex := range []struct {
			name string
			ex   Except
		}{{"", Except{}}, {"/except=client", Except{Sub: subs[n/2]}}} {
			b.Run(fmt.Sprintf("subscribers=%d%s", n, ex.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					h.Publish("room", f, ex.ex)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			})
		}
	}
}

func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	h := New()
	s := newSub("u")
	h.Register(s, 0)
	b.ReportAllocs()
	for b.Loop() {
		h.Subscribe(s, "room:1")
		h.Unsubscribe(s, "room:1")
	}
}

func TestTopChannelsAndUsers(t *testing.T) {
	h := New()
	subs := make([]*fakeSub, 5)
	for i := range subs {
		subs[i] = &fakeSub{user: string(rune('a' + i))}
		h.Register(subs[i], 0)
	}
	// room:0 has 5 subscribers, room:1 four, ... room:4 one.
	for c := range 5 {
		for _, s := range subs[c:] {
			h.Subscribe(s, "room:"+string(rune('0'+c)))
		}
	}
	top, total := h.TopChannels(3)
	want := []Count{{"room:0", 5}, {"room:1", 4}, {"room:2", 3}}
	if !slices.Equal(top, want) || total != 15 {
		t.Fatalf("TopChannels(3) = %v, %d; want %v, 15", top, total, want)
	}
	if top, _ := h.TopChannels(0); len(top) != 0 {
		t.Fatalf("TopChannels(0) = %v", top)
	}
	users, n := h.Users(2)
	if n != 5 || !slices.Equal(users, []Count{{"a", 1}, {"b", 1}}) {
		t.Fatalf("Users(2) = %v, %d", users, n)
	}
}
