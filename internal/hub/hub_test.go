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
	if n := h.Publish("room:1", f); n != 2 {
		t.Fatalf("publish reached %d", n)
	}
	if n := h.SendToUser("alice", f); n != 2 {
		t.Fatalf("send reached %d", n)
	}
	if n := h.Broadcast(f); n != 3 {
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
				h.Publish(ch, frameOf(`1`))
				h.Broadcast(frameOf(`2`))
				h.Unregister(s, []string{ch})
			}
		}()
	}
	wg.Wait()
	if st := h.Stats(); st != (Stats{}) {
		t.Fatalf("leftovers: %+v", st)
	}
}

func BenchmarkPublishFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h := New()
			for i := range n {
				s := newSub(fmt.Sprint(i))
				h.Register(s, 0)
				h.Subscribe(s, "room")
			}
			f := frameOf(`{"text":"hello"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.Publish("room", f)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
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
