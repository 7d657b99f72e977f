package protocol

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDocListsEveryCode ties docs/protocol.md's tables of error and
// disconnect codes to the codes declared in errors.go, both ways.
func TestDocListsEveryCode(t *testing.T) {
	t.Parallel()
	codes, disconnects := declaredCodes(t)
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}

	var docCodes []string
	for _, row := range tableRows(t, string(doc), "## Error codes") {
		docCodes = append(docCodes, strings.Trim(row[0], "`"))
	}
	slices.Sort(codes)
	slices.Sort(docCodes)
	if !slices.Equal(codes, docCodes) {
		t.Errorf("error codes:\nerrors.go %q\ndoc       %q", codes, docCodes)
	}

	var docDisc []string
	for _, row := range tableRows(t, string(doc), "## Disconnects") {
		docDisc = append(docDisc, fmt.Sprintf("%s %s %s", row[0], strings.Trim(row[1], "`"), row[2]))
	}
	slices.Sort(disconnects)
	slices.Sort(docDisc)
	if !slices.Equal(disconnects, docDisc) {
		t.Errorf("disconnects (code reason reconnect):\nerrors.go %q\ndoc       %q", disconnects, docDisc)
	}
}

// declaredCodes reads errors.go: the values of its Code constants, and each
// disconnect as "code reason yes|no".
func declaredCodes(t *testing.T) (codes, disconnects []string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	lit := func(e ast.Expr) string {
		l, ok := e.(*ast.BasicLit)
		if !ok {
			t.Fatalf("%T is not a literal", e)
		}
		if l.Kind == token.STRING {
			s, err := strconv.Unquote(l.Value)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return l.Value
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			if typ, ok := n.Type.(*ast.Ident); ok && typ.Name == "Code" {
				for _, v := range n.Values {
					codes = append(codes, lit(v))
				}
			}
		case *ast.CallExpr:
			fn, ok := n.Fun.(*ast.Ident)
			if ok && (fn.Name == "reconnectable" || fn.Name == "terminal") && len(n.Args) == 2 {
				if _, isLit := n.Args[0].(*ast.BasicLit); !isLit {
					return true // the helpers' own bodies
				}
				yes := map[bool]string{true: "yes", false: "no"}[fn.Name == "reconnectable"]
				disconnects = append(disconnects, fmt.Sprintf("%s %s %s", lit(n.Args[0]), lit(n.Args[1]), yes))
			}
		}
		return true
	})
	if len(codes) == 0 || len(disconnects) == 0 {
		t.Fatal("read no codes from errors.go: has it changed shape?")
	}
	return codes, disconnects
}

// tableRows returns the cells of the body rows of the first table after
// heading in a Markdown document.
func tableRows(t *testing.T, doc, heading string) [][]string {
	t.Helper()
	_, section, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no %q in the doc", heading)
	}
	var rows [][]string
	inTable := false
	for line := range strings.Lines(section) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		if !inTable {
			inTable = true // the header row
			continue
		}
		if strings.HasPrefix(line, "|---") {
			continue
		}
		var cells []string
		for c := range strings.SplitSeq(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("no table after %q", heading)
	}
	return rows
}

// TestDocListsEveryField ties the table of client frame fields in
// docs/protocol.md to the fields Request decodes, both ways.
func TestDocListsEveryField(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, row := range tableRows(t, string(doc), "## Client frames") {
		for name := range strings.SplitSeq(row[0], ",") {
			documented = append(documented, strings.Trim(strings.TrimSpace(name), "`"))
		}
	}
	var decoded []string
	rt := reflect.TypeFor[Request]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		decoded = append(decoded, name)
	}
	slices.Sort(documented)
	slices.Sort(decoded)
	if !slices.Equal(documented, decoded) {
		t.Errorf("client frame fields:\nRequest %q\ndoc     %q", decoded, documented)
	}
}
