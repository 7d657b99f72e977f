package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// batchBody is a batch publish of n messages to each of channels, in
// turn, numbered from first.
func batchBody(channels []string, first, n int) string {
	var msgs []string
	for i := first; i < first+n; i++ {
		for _, ch := range channels {
			msgs = append(msgs, fmt.Sprintf(`{"channel":%q,"data":{"n":%d}}`, ch, i))
		}
	}
	return `{"messages":[` + strings.Join(msgs, ",") + `]}`
}

// A batch publish stores the messages of each channel in their order, next
// to other batches, delivers them live in that order, and a client that
// missed them recovers them; channels without history get theirs live.
func TestBatchPublish(t *testing.T) {
	t.Parallel()
	srv := startServer(t, historyConfig(t, 10000))
	api := newAPI(t, srv)
	live := dialWS(t, srv)
	live.connect("alice")
	epoch := live.subscribeAt("chat:a", 0, "").Epoch
	live.subscribe("plain:a")

	// One batch: 3 messages to each channel, interleaved; the ids come in
	// request order.
	out := api.ok("POST", "/v1/publish", batchBody([]string{"chat:a", "plain:a"}, 1, 3))
	ids, _ := out["ids"].([]any)
	if len(ids) != 6 {
		t.Fatalf("ids: %v", out)
	}
	var chat, plain []frame
	for range 6 {
		f := live.expect("message")
		if f.Channel == "chat:a" {
			chat = append(chat, f)
		} else {
			plain = append(plain, f)
		}
	}
	for i := range 3 {
		if chat[i].Offset != uint64(i+1) || string(chat[i].Data) != fmt.Sprintf(`{"n":%d}`, i+1) || mustIDRaw(t, chat[i]) != ids[2*i] {
			t.Fatalf("history message %d: %s (ids %v)", i, chat[i].raw, ids)
		}
		if plain[i].Offset != 0 || string(plain[i].Data) != fmt.Sprintf(`{"n":%d}`, i+1) || mustIDRaw(t, plain[i]) != ids[2*i+1] {
			t.Fatalf("plain message %d: %s", i, plain[i].raw)
		}
	}

	// Concurrent batches to one channel: each batch's messages stay in
	// their order and together, and every offset is given once.
	live.close()
	const batches, each = 8, 50
	var wg sync.WaitGroup
	for b := range batches {
		wg.Go(func() {
			body := strings.ReplaceAll(batchBody([]string{"chat:a"}, 1, each), `{"n":`, fmt.Sprintf(`{"b":%d,"n":`, b))
			if status, out := api.do("POST", "/v1/publish", body); status != 200 {
				t.Errorf("batch %d: %d %v", b, status, out)
			}
		})
	}
	wg.Wait()
	c := dialTCP(t, srv)
	c.connect("alice")
	if p := c.subscribeAt("chat:a", 3, epoch); p.Recovered == nil || !*p.Recovered || p.Missed != batches*each {
		t.Fatalf("recovering the batches: %+v", p)
	}
	got := c.expectMessages(4, batches*each)
	for i := 0; i < len(got); i += each {
		var b0 int
		for j := range each {
			var d struct{ B, N int }
			if err := jsonUnmarshal(got[i+j].Data, &d); err != nil {
				t.Fatal(err)
			}
			if j == 0 {
				b0 = d.B
			}
			if d.B != b0 || d.N != j+1 {
				t.Fatalf("offset %d: batch %d message %d, want batch %d message %d", got[i+j].Offset, d.B, d.N, b0, j+1)
			}
		}
	}
}

// A bad batch is refused whole, naming the message at fault; nothing of it
// is stored.
func TestBatchPublishBadInput(t *testing.T) {
	t.Parallel()
	srv := startServer(t, historyConfig(t, 100))
	api := newAPI(t, srv)
	for body, want := range map[string]string{
		`{"messages":[]}`: "invalid_field",
		`{"messages":[{"channel":"chat:b","data":1}],"channel":"chat:b","data":1}`:        "invalid_field",
		`{"messages":[{"channel":"chat:b","data":1},{"channel":"bad channel","data":2}]}`: "invalid_channel",
		`{"messages":[{"channel":"chat:b"}]}`:                                             "missing_field",
		`{"messages":{"channel":"chat:b","data":1}}`:                                      "invalid_field",
		`{"messages":[{"channel":"chat:b","data":1,"extra":true}]}`:                       "invalid_body",
	} {
		status, out := api.do("POST", "/v1/publish", body)
		if status != 400 || errCode(out) != want {
			t.Errorf("%s: %d %v, want 400 %s", body, status, out, want)
		}
		if want == "invalid_channel" {
			if msg, _ := out["error"].(map[string]any)["message"].(string); !strings.HasPrefix(msg, "messages[1]: ") {
				t.Errorf("the error does not name the message at fault: %q", msg)
			}
		}
	}
	c := dialWS(t, srv)
	c.connect("alice")
	if p := c.subscribeAt("chat:b", 0, ""); p.Offset != 0 {
		t.Fatalf("a refused batch stored messages: %+v", p)
	}
	status, out := api.do("POST", "/v1/publish", batchBody([]string{"chat:b"}, 1, 10001))
	if status != 400 || errCode(out) != "too_large" {
		t.Errorf("10,001 messages: %d %v", status, out)
	}
}

// A batch publish retried with its Idempotency-Key answers the first ids
// and stores nothing more.
func TestBatchPublishIdempotent(t *testing.T) {
	t.Parallel()
	srv := startServer(t, historyConfig(t, 100))
	api := newAPI(t, srv)
	body := batchBody([]string{"chat:i", "plain:i"}, 1, 2)
	first, replayed := api.withKey("/v1/publish", "batch-1", body)
	if replayed {
		t.Fatal("the first call was a replay")
	}
	again, replayed := api.withKey("/v1/publish", "batch-1", body)
	if !replayed || fmt.Sprint(again["ids"]) != fmt.Sprint(first["ids"]) {
		t.Fatalf("replay: %v (replayed %t), first %v", again, replayed, first)
	}
	c := dialWS(t, srv)
	c.connect("alice")
	if p := c.subscribeAt("chat:i", 0, ""); p.Offset != 2 {
		t.Fatalf("after a replay the channel holds %d messages, want 2", p.Offset)
	}
}
