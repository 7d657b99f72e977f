package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

// TestOpenAPIMatchesRoutes ties openapi.json to the routes the API
// registers, both ways: every documented operation is served, and every
// route is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var documented []string
	for path, item := range doc.Paths {
		for key := range item {
			switch key {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				documented = append(documented, strings.ToUpper(key)+" "+path)
			}
		}
	}
	a := New(Config{Open: true, MaxBody: 1 << 20}, nopBackend{}, nopBackend{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var registered []string
	for _, r := range a.routes() {
		registered = append(registered, r.method+" "+r.path)
	}
	slices.Sort(documented)
	slices.Sort(registered)
	if !slices.Equal(documented, registered) {
		t.Errorf("openapi.json and the routes differ:\ndocumented %q\nregistered %q", documented, registered)
	}

	// Each documented operation reaches a handler through the mux: the
	// answer is not the catch-all's 404 nor another method's 405.
	mux := http.NewServeMux()
	a.Register(mux)
	params := strings.NewReplacer("{user}", "alice", "{channel}", "room:1", "{id}", "d4aeq1g3f1hbmdd0ec10")
	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		req := httptest.NewRequest(method, params.Replace(path), strings.NewReader("{}"))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
			t.Errorf("%s: %d %s", op, rec.Code, rec.Body)
		}
	}
}

// nopBackend answers every call with nothing.
type nopBackend struct{}

func (nopBackend) Dispatch(context.Context, *protocol.Message) error { return nil }
func (nopBackend) DispatchBatch(_ context.Context, ms []*protocol.Message) []error {
	return make([]error, len(ms))
}
func (nopBackend) SendBatch(_ context.Context, ms []*protocol.Message) []error {
	return make([]error, len(ms))
}
func (nopBackend) UserPresence(context.Context, string) (int, json.RawMessage, error) {
	return 0, nil, nil
}
func (nopBackend) ChannelPresence(context.Context, string) ([]Member, error) { return nil, nil }
func (nopBackend) Stats(context.Context) (Stats, error)                      { return Stats{}, nil }
func (nopBackend) DisconnectUser(context.Context, string, protocol.Disconnect) (int, error) {
	return 0, nil
}
func (nopBackend) UnsubscribeUser(context.Context, string, string) (int, error) { return 0, nil }
func (nopBackend) Overview() Overview                                           { return Overview{} }
func (nopBackend) TopChannels(int) ([]ChannelCount, int)                        { return nil, 0 }
func (nopBackend) OnlineUsers(int) ([]UserCount, int)                           { return nil, 0 }
func (nopBackend) UserConnections(string) ([]Connection, json.RawMessage) {
	return nil, nil
}
func (nopBackend) Remember(_ context.Context, _ string, _, r []byte) ([]byte, bool, error) {
	return r, true, nil
}
func (nopBackend) Forget(context.Context, string) error             { return nil }
func (nopBackend) Stored(context.Context, string) (bool, error)     { return false, nil }
func (nopBackend) Receipt(context.Context, string) (Receipt, error) { return Receipt{}, nil }
func (nopBackend) History(context.Context, string, HistoryQuery) (History, error) {
	return History{}, nil
}
func (nopBackend) Inbox(context.Context, string, string, int) (Inbox, error) { return Inbox{}, nil }

// recordingBackend keeps the messages dispatched to it.
type recordingBackend struct {
	nopBackend
	mu   sync.Mutex
	sent []*protocol.Message
}

func (b *recordingBackend) Dispatch(_ context.Context, m *protocol.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, m)
	return nil
}

func (b *recordingBackend) DispatchBatch(ctx context.Context, ms []*protocol.Message) []error {
	return dispatchEach(ctx, b.Dispatch, ms)
}

func (b *recordingBackend) SendBatch(ctx context.Context, ms []*protocol.Message) []error {
	return dispatchEach(ctx, b.Dispatch, ms)
}

// dispatchEach is DispatchBatch for a test backend: each message in turn.
func dispatchEach(ctx context.Context, dispatch func(context.Context, *protocol.Message) error, ms []*protocol.Message) []error {
	errs := make([]error, len(ms))
	for i, m := range ms {
		errs[i] = dispatch(ctx, m)
	}
	return errs
}

// TestOpenAPIPushFields ties the push bodies of openapi.json to what the
// handlers take: each documented field is accepted (an exclusion reaches
// the message), and a field it does not document is refused.
func TestOpenAPIPushFields(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema struct {
						Properties map[string]json.RawMessage `json:"properties"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	samples := map[string]any{
		"channel": "room:1", "to": "alice", "data": map[string]int{"n": 1},
		"exclude_client": "2s", "exclude_user": "bob",
	}
	bases := map[string]map[string]any{
		"/v1/publish":   {"channel": "room:1", "data": 1},
		"/v1/send":      {"to": "alice", "data": 1},
		"/v1/broadcast": {"data": 1},
	}
	for path, base := range bases {
		props := doc.Paths[path]["post"].RequestBody.Content["application/json"].Schema.Properties
		for _, field := range []string{"exclude_client", "exclude_user"} {
			if props[field] == nil {
				t.Errorf("POST %s: %s is not documented", path, field)
			}
		}
		for field := range props {
			if field == "users" {
				continue // the alternative to "to", tried below
			}
			body := maps.Clone(base)
			body[field] = samples[field]
			b := &recordingBackend{}
			if code, resp := post(t, b, path, body); code != http.StatusOK {
				t.Errorf("POST %s with %s: %d %s", path, field, code, resp)
				continue
			}
			m := b.sent[0]
			if got := map[string]string{"exclude_client": m.ExceptClient, "exclude_user": m.ExceptUser}[field]; got != "" && got != samples[field] {
				t.Errorf("POST %s: %s reached the message as %q", path, field, got)
			}
			if (field == "exclude_client") != (m.ExceptClient != "") || (field == "exclude_user") != (m.ExceptUser != "") {
				t.Errorf("POST %s with %s: message excludes client %q, user %q", path, field, m.ExceptClient, m.ExceptUser)
			}
		}
		body := maps.Clone(base)
		body["exclude"] = "bob"
		if code, resp := post(t, &recordingBackend{}, path, body); code != http.StatusBadRequest || !strings.Contains(resp, "unknown field") {
			t.Errorf("POST %s with an undocumented field: %d %s", path, code, resp)
		}
	}
	if code, resp := post(t, &recordingBackend{}, "/v1/send", map[string]any{"users": []string{"alice"}, "data": 1}); code != http.StatusOK {
		t.Errorf("POST /v1/send with users: %d %s", code, resp)
	}
	for _, bad := range []map[string]any{{"exclude_client": ""}, {"exclude_client": "2S"}, {"exclude_client": "12345678901234"}, {"exclude_user": ""}, {"exclude_user": "a b"}} {
		body := map[string]any{"channel": "room:1", "data": 1}
		maps.Copy(body, bad)
		if code, resp := post(t, &recordingBackend{}, "/v1/publish", body); code != http.StatusBadRequest {
			t.Errorf("POST /v1/publish %v: %d %s", bad, code, resp)
		}
	}
}

// post makes one request through an open API over b.
func post(t *testing.T, b Backend, path string, body any) (int, string) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Open: true, MaxBody: 1 << 20, MaxBatch: 10}, b, nopBackend{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	a.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(raw)))
	return rec.Code, rec.Body.String()
}
