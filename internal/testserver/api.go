package testserver

import (
	"encoding/json"
	"net/http"
	"strings"
)

// PostUntil posts body(0), body(1), ... to the server API url, one call
// after another, until stop is closed, and hands answered the message id
// of every call answered 200: a writer that keeps a server busy while a
// test breaks something. Calls that fail are not retried.
func PostUntil(stop <-chan struct{}, httpc *http.Client, url string, body func(i int) string, answered func(id string)) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		resp, err := httpc.Post(url, "application/json", strings.NewReader(body(i)))
		if err != nil {
			continue
		}
		var out struct{ ID string }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && out.ID != "" {
			answered(out.ID)
		}
	}
}
