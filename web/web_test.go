package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServesEmbeddedFiles(t *testing.T) {
	t.Parallel()
	h := New()
	get := func(path string, header http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, tc := range []struct {
		path, ctype, cache, contains string
		csp                          bool
	}{
		{"/herald.js", "text/javascript", "public, max-age=300", "export class HeraldClient", false},
		{"/herald.d.ts", "application/typescript", "public, max-age=300", "export declare class HeraldClient", false},
		{"/demo/", "text/html", "no-cache", "Herald demo chat", true},
		{"/demo/demo.js", "text/javascript", "no-cache", `from "/herald.js"`, true},
		{"/admin/", "text/html", "no-cache", "Herald dashboard", true},
		{"/admin/admin.css", "text/css", "no-cache", "", true},
	} {
		rec := get(tc.path, nil)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), tc.ctype) || rec.Header().Get("Cache-Control") != tc.cache {
			t.Errorf("%s: %d %q %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"))
		}
		if !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("%s: body lacks %q", tc.path, tc.contains)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if tc.csp != strings.Contains(csp, "default-src 'none'") || (tc.csp && strings.Contains(csp, "unsafe")) {
			t.Errorf("%s: Content-Security-Policy %q", tc.path, csp)
		}
		etag := rec.Header().Get("ETag")
		if etag == "" {
			t.Fatalf("%s: no ETag", tc.path)
		}
		if again := get(tc.path, http.Header{"If-None-Match": {`"other", ` + etag}}); again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("%s with its ETag: %d, %d bytes", tc.path, again.Code, again.Body.Len())
		}
		if stale := get(tc.path, http.Header{"If-None-Match": {`"stale"`}}); stale.Code != 200 {
			t.Errorf("%s with a stale ETag: %d", tc.path, stale.Code)
		}
	}
	if rec := get("/demo/nope.js", nil); rec.Code != 404 || !strings.Contains(rec.Body.String(), `"not_found"`) {
		t.Errorf("missing file: %d %s", rec.Code, rec.Body)
	}
	// A Host header cannot inject into the policy.
	req := httptest.NewRequest("GET", "/admin/", nil)
	req.Host = "evil'; script-src *"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if csp := rec.Header().Get("Content-Security-Policy"); strings.Contains(csp, "evil") {
		t.Errorf("Host reached the policy: %q", csp)
	}
}
