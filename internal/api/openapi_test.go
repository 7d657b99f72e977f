package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/hub"
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
func (nopBackend) UserPresence(string) (int, json.RawMessage)        { return 0, nil }
func (nopBackend) ChannelPresence(string) []Member                   { return nil }
func (nopBackend) Stats() hub.Stats                                  { return hub.Stats{} }
func (nopBackend) DisconnectUser(string, protocol.Disconnect) int    { return 0 }
func (nopBackend) UnsubscribeUser(string, string) int                { return 0 }
func (nopBackend) Overview() Overview                                { return Overview{} }
func (nopBackend) TopChannels(int) ([]ChannelCount, int)             { return nil, 0 }
func (nopBackend) OnlineUsers(int) ([]UserCount, int)                { return nil, 0 }
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
