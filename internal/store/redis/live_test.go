package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/broker"
	redisbroker "github.com/heraldpush/herald/internal/broker/redis"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/redistest"
	"github.com/heraldpush/herald/internal/store"
)

// TestLiveInOrder: writers on separate clients (as on separate nodes)
// store channel messages and direct messages at once; a broker node
// receives each channel's and each user's messages in offset order, each
// once, positioned as the store gave it.
func TestLiveInOrder(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	newClient := func() rueidis.Client {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	for _, sharded := range []bool{true, false} {
		t.Run(fmt.Sprint("sharded=", sharded), func(t *testing.T) {
			prefix, pub := fmt.Sprint("live", sharded), "PUBLISH"
			if sharded {
				pub = "SPUBLISH"
			}
			var mu sync.Mutex
			got := map[string][]*protocol.Message{}
			total := 0
			done := make(chan struct{})
			const writers, each = 4, 50
			// Every fifth round stores a batch of two channel messages,
			// every third one two direct messages in one call.
			const want = 2*writers*each + writers*each/5 + writers*((each+2)/3)
			b := redisbroker.New(newClient(), redisbroker.Options{Prefix: prefix, Classic: !sharded})
			err := b.Start(ctx, func(m *protocol.Message) {
				mu.Lock()
				defer mu.Unlock()
				got[string(m.Kind)+m.Channel+m.To] = append(got[string(m.Kind)+m.Channel+m.To], m)
				if total++; total == want {
					close(done)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for _, tp := range []broker.Topic{broker.ChannelTopic("news"), broker.UserTopic("bob")} {
				if err := b.Subscribe(ctx, tp); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for w := range writers {
				st := New(newClient(), Options{Prefix: prefix, Publish: pub})
				wg.Go(func() {
					for i := range each {
						id := fmt.Sprintf("w%d-%d", w, i)
						m := &protocol.Message{ID: id, Kind: protocol.KindChannel, Channel: "news", Data: []byte(`1`)}
						var err error
						if i%5 == 0 {
							// A batch of one goes through the batch script.
							m2 := &protocol.Message{ID: id + "b", Kind: protocol.KindChannel, Channel: "news", Data: []byte(`2`)}
							_, err = st.AppendLive(ctx, "news", time.Now(), [][]byte{[]byte(id), []byte(id + "b")}, [][]byte{redisbroker.Encode(m), redisbroker.Encode(m2)})
						} else {
							_, err = st.AppendLive(ctx, "news", time.Now(), [][]byte{[]byte(id)}, [][]byte{redisbroker.Encode(m)})
						}
						if err != nil {
							t.Error(err)
							return
						}
						d := &protocol.Message{ID: id, Kind: protocol.KindDirect, To: "bob", Data: []byte(`3`)}
						if i%3 == 0 {
							d2 := &protocol.Message{ID: id + "b", Kind: protocol.KindDirect, To: "bob", Data: []byte(`4`)}
							_, err = st.PushManyLive(ctx, time.Now(), []LivePush{
								{User: "bob", ID: id, Data: []byte(id), Live: redisbroker.Encode(d)},
								{User: "bob", ID: id + "b", Data: []byte(id + "b"), Live: redisbroker.Encode(d2)},
							})
						} else {
							_, err = st.PushLive(ctx, "bob", id, time.Now(), []byte(id), redisbroker.Encode(d))
						}
						if err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			select {
			case <-done:
			case <-ctx.Done():
			}
			mu.Lock()
			defer mu.Unlock()
			ch, dm := got["channelnews"], got["directbob"]
			if len(ch)+len(dm) != want {
				t.Fatalf("received %d channel and %d direct messages, want %d in all", len(ch), len(dm), want)
			}
			for i, m := range ch {
				if m.Offset != uint64(i+1) || m.Epoch == "" {
					t.Fatalf("channel message %d came with offset %d epoch %q", i, m.Offset, m.Epoch)
				}
			}
			for i, m := range dm {
				if m.Seq != uint64(i+1) || m.To != "bob" {
					t.Fatalf("direct message %d came with seq %d", i, m.Seq)
				}
			}
		})
	}
}

// TestPushMany: one call stores a message in each of several inboxes, a
// user named twice getting both in order, each with its receipt, its
// user listed, and what it publishes live only where asked.
func TestPushMany(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := connect(t, srv.Addr)
	st := New(client, Options{Prefix: "many", Publish: "SPUBLISH"})
	if _, err := st.Push(ctx, "ann", "first", time.Now(), []byte(`0`)); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	seqs, err := st.PushManyLive(ctx, at, []LivePush{
		{User: "ann", ID: "a1", Data: []byte(`1`)},
		{User: "bob", ID: "b1", Data: []byte(`2`)},
		{User: "ann", ID: "a2", Data: []byte(`3`)},
	})
	if err != nil || fmt.Sprint(seqs) != "[2 1 3]" {
		t.Fatalf("PushManyLive = %v, %v; want [2 1 3]", seqs, err)
	}
	for user, want := range map[string]string{"ann": "[0 1 3]", "bob": "[2]"} {
		p, err := st.Pending(ctx, user, "phone", 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range p.Records {
			got = append(got, string(r.Data))
		}
		if fmt.Sprint(got) != want {
			t.Errorf("%s's inbox holds %v, want %v", user, got, want)
		}
	}
	r, err := st.Receipt(ctx, "a2")
	if err != nil || r.User != "ann" || r.Seq != 3 || r.Accepted.UnixNano() != at.UnixNano() {
		t.Errorf("receipt of a2 = %+v, %v; want ann's 3, accepted %v", r, err, at)
	}
	users, err := st.Users(ctx, "", 10)
	if err != nil || fmt.Sprint(users) != "[ann bob]" {
		t.Errorf("users = %v, %v; want [ann bob]", users, err)
	}
	for _, bad := range []LivePush{{User: "", ID: "x"}, {User: "x", ID: ""}} {
		if _, err := st.PushManyLive(ctx, at, []LivePush{bad}); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("push %+v: %v, want ErrInvalidName", bad, err)
		}
	}
}
