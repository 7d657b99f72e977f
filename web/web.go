// Package web holds what Herald serves to browsers, embedded in the
// binary: the JavaScript client (/herald.js, with its type declarations
// at /herald.d.ts), the demo chat (/demo/) and the operator dashboard
// (/admin/). None of it loads anything from elsewhere.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed herald.js herald.d.ts demo admin
var files embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
	page        bool // under /demo/ or /admin/
}

// Handler serves the embedded files.
type Handler struct {
	assets map[string]*asset // by URL path
}

// New loads the embedded files.
func New() *Handler {
	h := &Handler{assets: make(map[string]*asset)}
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if strings.HasSuffix(p, ".ts") {
			ct = "application/typescript; charset=utf-8"
		}
		a := &asset{body: b, contentType: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`, page: strings.Contains(p, "/")}
		h.assets["/"+p] = a
		if strings.HasSuffix(p, "/index.html") {
			h.assets["/"+strings.TrimSuffix(p, "index.html")] = a
		}
		return nil
	})
	return h
}

// Paths lists the URL paths served, for the server's routes: the files
// at the root, and each page's directory as a prefix ("/demo/").
func (h *Handler) Paths() []string {
	return []string{"/herald.js", "/herald.d.ts", "/demo/", "/admin/"}
}

// ServeHTTP serves one embedded file with an ETag, answering a matching
// If-None-Match with 304, and the security headers every page gets.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := h.assets[r.URL.Path]
	if a == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such file"}}` + "\n"))
		return
	}
	hd := w.Header()
	hd.Set("ETag", a.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	if a.page {
		// Pages and their scripts are revalidated on every load, so an
		// upgraded server is seen at once; a 304 costs a round trip.
		hd.Set("Cache-Control", "no-cache")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", csp(r))
	} else {
		// The client library: cached a while, then revalidated.
		hd.Set("Cache-Control", "public, max-age=300")
		// Pages of other origins may load it as a module script.
		hd.Set("Access-Control-Allow-Origin", "*")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", a.contentType)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(a.body)
}

// csp allows a page its own scripts, styles and connections (WebSockets
// to this host included) and nothing else: no inline script, no other
// origin, no framing.
func csp(r *http.Request) string {
	connect := "'self'"
	if host := r.Host; host != "" && !strings.ContainsAny(host, " ;'\"") {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src " + connect +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

func etagMatches(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "W/"))
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
