package client_test

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
)

// upgradeCodes are the client's codes of a refused WebSocket upgrade, which
// come in an HTTP error body rather than in a reply;
// TestUpgradeRefusalCodes ties them to the server.
var upgradeCodes = []string{"forbidden_origin", "connect_rate_limited"}

// TestCodesMatchServer ties the client's error and disconnect codes to the
// server's, read from the source of both: a code added, removed or renamed
// on one side only fails here.
func TestCodesMatchServer(t *testing.T) {
	t.Parallel()
	clientCodes, clientDisc := readCodes(t, "errors.go", "Disconnect")
	serverCodes, serverDisc := readCodes(t, "../internal/protocol/errors.go", "Disconnect")

	for _, c := range upgradeCodes {
		if !slices.Contains(clientCodes, c) {
			t.Errorf("the client has no code %q for a refused upgrade", c)
		}
		clientCodes = slices.DeleteFunc(clientCodes, func(s string) bool { return s == c })
	}
	slices.Sort(clientCodes)
	slices.Sort(serverCodes)
	if !slices.Equal(clientCodes, serverCodes) {
		t.Errorf("reply codes differ:\nclient %q\nserver %q", clientCodes, serverCodes)
	}
	if len(serverCodes) == 0 || len(serverDisc) == 0 {
		t.Fatal("read no server codes: has internal/protocol/errors.go changed shape?")
	}

	cd, sd := slices.Sorted(maps.Keys(clientDisc)), slices.Sorted(maps.Keys(serverDisc))
	if !slices.Equal(cd, sd) {
		t.Errorf("disconnect codes differ:\nclient %v\nserver %v", cd, sd)
	}
	// The client decides whether to reconnect from the code's range when
	// it has only a WebSocket close code; the server's flag must agree.
	for code, reconnect := range serverDisc {
		if reconnect != (code < 3500) {
			t.Errorf("server disconnect %d has reconnect %v, against its range", code, reconnect)
		}
	}
}

// readCodes parses a Go file and returns the string values of its
// constants of type Code, and its disconnect codes: the integer constants
// whose names start with prefix (the client's, reconnect taken from the
// code's range), or the variables set by reconnectable(code, reason) or
// terminal(code, reason) (the server's).
func readCodes(t *testing.T, path, prefix string) (codes []string, disconnects map[int]bool) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	disconnects = make(map[int]bool)
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || (gd.Tok != token.CONST && gd.Tok != token.VAR) {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				v := vs.Values[i]
				if typ, ok := vs.Type.(*ast.Ident); ok && typ.Name == "Code" {
					codes = append(codes, stringLit(t, v))
					continue
				}
				if len(name.Name) <= len(prefix) || name.Name[:len(prefix)] != prefix {
					continue
				}
				switch v := v.(type) {
				case *ast.BasicLit:
					code := intLit(t, v)
					disconnects[code] = code < 3500
				case *ast.CallExpr:
					fn, ok := v.Fun.(*ast.Ident)
					if !ok || (fn.Name != "reconnectable" && fn.Name != "terminal") || len(v.Args) != 2 {
						t.Fatalf("%s: %s is set in a way this test cannot read", path, name.Name)
					}
					disconnects[intLit(t, v.Args[0])] = fn.Name == "reconnectable"
				}
			}
		}
	}
	return codes, disconnects
}

func stringLit(t *testing.T, e ast.Expr) string {
	t.Helper()
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		t.Fatalf("code %T is not a string literal", e)
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func intLit(t *testing.T, e ast.Expr) int {
	t.Helper()
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.INT {
		t.Fatalf("disconnect code %T is not an integer literal", e)
	}
	n, err := strconv.Atoi(lit.Value)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUpgradeRefusalCodes checks that a real server refuses WebSocket
// upgrades with the client's upgrade codes, and a TCP connection over the
// connect rate with its disconnect code.
func TestUpgradeRefusalCodes(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	ts := startServer(t, func(c *config.Config) { c.AllowedOrigins = []string{"https://app.example"} })
	_, err := client.Dial(ctx, ts.wsURL(), client.WithUser("alice"),
		client.WithHeader(http.Header{"Origin": {"https://elsewhere.example"}}))
	var u *client.UpgradeError
	if !errors.As(err, &u) || u.StatusCode != http.StatusForbidden || u.Reply == nil || u.Reply.Code != client.CodeForbiddenOrigin {
		t.Errorf("dial from another origin: got %v, want HTTP 403 %s", err, client.CodeForbiddenOrigin)
	}

	// One new connection per address, then none for a long while.
	ts = startServer(t, func(c *config.Config) { c.ConnectsPerIP, c.ConnectsBurst = 0.001, 1 })
	c, err := client.Dial(ctx, ts.wsURL(), client.WithUser("alice"))
	if err != nil {
		t.Fatalf("first dial: %v", err)
	}
	defer c.Close()
	_, err = client.Dial(ctx, ts.wsURL(), client.WithUser("alice"))
	if !errors.As(err, &u) || u.StatusCode != http.StatusTooManyRequests || u.Reply == nil || u.Reply.Code != client.CodeConnectRateLimited {
		t.Errorf("dial over the connect rate: got %v, want HTTP 429 %s", err, client.CodeConnectRateLimited)
	}
	_, err = client.Dial(ctx, ts.tcpURL(), client.WithUser("alice"))
	var d *client.Disconnect
	if !errors.As(err, &d) || d.Code != client.DisconnectConnectRateLimited || !d.Reconnect {
		t.Errorf("TCP dial over the connect rate: got %v, want disconnect %d", err, client.DisconnectConnectRateLimited)
	}
}
