package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// apiClient calls the server's HTTP API: one server, or several nodes of a
// cluster, which calls go to in turn.
type apiClient struct {
	bases []string // no trailing slash
	key   string
	hc    *http.Client
	next  *atomic.Uint64 // the call count, which picks the base
}

// apiCallTimeout bounds one API call.
const apiCallTimeout = 30 * time.Second

func newAPIClient(bases []string, key string, conns int) *apiClient {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	trimmed := make([]string, len(bases))
	for i, b := range bases {
		trimmed[i] = strings.TrimRight(b, "/")
	}
	return &apiClient{
		bases: trimmed,
		key:   key,
		hc:    &http.Client{Transport: tr, Timeout: apiCallTimeout},
		next:  new(atomic.Uint64),
	}
}

// pinned returns a client for the i-th base only, sharing a's connections.
func (a *apiClient) pinned(i int) *apiClient {
	return &apiClient{bases: a.bases[i : i+1], key: a.key, hc: a.hc, next: new(atomic.Uint64)}
}

// base returns the base URL of the next call.
func (a *apiClient) base() string {
	if len(a.bases) == 1 {
		return a.bases[0]
	}
	return a.bases[(a.next.Add(1)-1)%uint64(len(a.bases))]
}

// close releases idle connections.
func (a *apiClient) close() { a.hc.CloseIdleConnections() }

// APIError is a non-2xx answer of the server API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap makes every APIError match ErrAPI.
func (e *APIError) Unwrap() error { return ErrAPI }

// do sends one request to the next base and decodes a 2xx JSON answer
// into out (when not nil).
func (a *apiClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	return a.doAt(ctx, a.base(), method, path, body, out)
}

// doAll sends one request without a body to every base, and returns the
// first error.
func (a *apiClient) doAll(ctx context.Context, method, path string, out func(i int) any) error {
	for i, base := range a.bases {
		if err := a.doAt(ctx, base, method, path, nil, out(i)); err != nil {
			return err
		}
	}
	return nil
}

// doAt is do against one base.
func (a *apiClient) doAt(ctx context.Context, base, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &APIError{Status: resp.StatusCode}
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil {
			apiErr.Code, apiErr.Message = e.Error.Code, e.Error.Message
		}
		return fmt.Errorf("%s %s: %w", method, path, apiErr)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// publish posts data to channel.
func (a *apiClient) publish(ctx context.Context, channel string, data []byte) error {
	body := make([]byte, 0, len(channel)+len(data)+24)
	body = append(body, `{"channel":"`...)
	body = append(body, channel...)
	body = append(body, `","data":`...)
	body = append(append(body, data...), '}')
	var out struct {
		ID string `json:"id"`
	}
	if err := a.do(ctx, http.MethodPost, "/v1/publish", body, &out); err != nil {
		return err
	}
	if out.ID == "" {
		return fmt.Errorf("POST /v1/publish: %w: answer has no message id", ErrAPI)
	}
	return nil
}

// publishBatch posts data as one batch of messages to channel, checking
// that one id comes back per message.
func (a *apiClient) publishBatch(ctx context.Context, channel string, data [][]byte) error {
	body := append(make([]byte, 0, 64*len(data)), `{"messages":[`...)
	for i, d := range data {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"channel":"`...)
		body = append(body, channel...)
		body = append(body, `","data":`...)
		body = append(append(body, d...), '}')
	}
	body = append(body, "]}"...)
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := a.do(ctx, http.MethodPost, "/v1/publish", body, &out); err != nil {
		return err
	}
	if len(out.IDs) != len(data) {
		return fmt.Errorf("POST /v1/publish: %w: %d ids for %d messages", ErrAPI, len(out.IDs), len(data))
	}
	return nil
}

// send posts data to one user ({"to":...}) or, when batch is set, to every
// user in users ({"users":[...]}), checking that one id comes back per user.
func (a *apiClient) send(ctx context.Context, users []string, batch bool, data []byte) error {
	body := make([]byte, 0, 16*len(users)+len(data)+24)
	if !batch && len(users) == 1 {
		body = append(body, `{"to":"`...)
		body = append(body, users[0]...)
		body = append(body, '"')
	} else {
		body = append(body, `{"users":[`...)
		for i, u := range users {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(append(append(body, '"'), u...), '"')
		}
		body = append(body, ']')
	}
	body = append(body, `,"data":`...)
	body = append(append(body, data...), '}')
	var out struct {
		ID  string   `json:"id"`
		IDs []string `json:"ids"`
	}
	if err := a.do(ctx, http.MethodPost, "/v1/send", body, &out); err != nil {
		return err
	}
	got := len(out.IDs)
	if out.ID != "" {
		got = 1
	}
	if got != len(users) {
		return fmt.Errorf("POST /v1/send: %w: %d ids for %d users", ErrAPI, got, len(users))
	}
	return nil
}

// ServerStats is the answer of GET /v1/stats.
type ServerStats struct {
	Connections int `json:"connections"`
	Users       int `json:"users"`
	Channels    int `json:"channels"`
}

// stats reads GET /v1/stats of every base and sums them: with several
// nodes, their connections.
func (a *apiClient) stats(ctx context.Context) (ServerStats, error) {
	each := make([]ServerStats, len(a.bases))
	err := a.doAll(ctx, http.MethodGet, "/v1/stats", func(i int) any { return &each[i] })
	var sum ServerStats
	for _, s := range each {
		sum.Connections += s.Connections
		sum.Users += s.Users
		sum.Channels += s.Channels
	}
	return sum, err
}

// goroutines reads the server's goroutine count, summed over every base:
// the go_goroutines gauge of its Prometheus metrics (/metrics), else the
// Go profiler's /debug/pprof/goroutine?debug=1 when its operator enabled
// it; ok is false when neither tells for every base.
func (a *apiClient) goroutines(ctx context.Context) (n int, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, base := range a.bases {
		g, found := a.scanFirst(ctx, base, "/metrics", 4<<20, "go_goroutines ")
		if !found {
			g, found = a.scanFirst(ctx, base, "/debug/pprof/goroutine?debug=1", 4096, "goroutine profile: total ")
		}
		if !found {
			return 0, false
		}
		n += g
	}
	return n, true
}

// scanSum is scanFirst summed over every base; ok is false unless every
// base tells.
func (a *apiClient) scanSum(ctx context.Context, path string, limit int64, prefix string) (n int, ok bool) {
	for _, base := range a.bases {
		v, found := a.scanFirst(ctx, base, path, limit, prefix)
		if !found {
			return 0, false
		}
		n += v
	}
	return n, true
}

// scanFirst GETs path of base and returns the number after prefix on the
// first line that starts with it.
func (a *apiClient) scanFirst(ctx context.Context, base, path string, limit int64, prefix string) (int, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, false
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, limit))
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), prefix)
		if !found {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return int(v), err == nil
	}
	return 0, false
}
