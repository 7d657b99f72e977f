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
	"time"
)

// apiClient calls the server's HTTP API.
type apiClient struct {
	base string // no trailing slash
	key  string
	hc   *http.Client
}

// apiCallTimeout bounds one API call.
const apiCallTimeout = 30 * time.Second

func newAPIClient(base, key string, conns int) *apiClient {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &apiClient{
		base: strings.TrimRight(base, "/"),
		key:  key,
		hc:   &http.Client{Transport: tr, Timeout: apiCallTimeout},
	}
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

// do sends one request and decodes a 2xx JSON answer into out (when not
// nil).
func (a *apiClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
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

// stats reads GET /v1/stats.
func (a *apiClient) stats(ctx context.Context) (ServerStats, error) {
	var s ServerStats
	err := a.do(ctx, http.MethodGet, "/v1/stats", nil, &s)
	return s, err
}

// goroutines reads the server's goroutine count: the go_goroutines gauge
// of its Prometheus metrics (/metrics), else the Go profiler's
// /debug/pprof/goroutine?debug=1 when its operator enabled it; ok is false
// when neither tells.
func (a *apiClient) goroutines(ctx context.Context) (n int, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n, ok := a.scanFirst(ctx, "/metrics", 4<<20, "go_goroutines "); ok {
		return n, true
	}
	return a.scanFirst(ctx, "/debug/pprof/goroutine?debug=1", 4096, "goroutine profile: total ")
}

// scanFirst GETs path and returns the number after prefix on the first
// line that starts with it.
func (a *apiClient) scanFirst(ctx context.Context, path string, limit int64, prefix string) (int, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
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
