package cli

import (
	"strings"
	"testing"
)

// DATA that is JSON goes as it is; text goes as a string; text that looks
// like JSON but is not is refused, unless --raw sends it as a string.
func TestParseData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		arg  string
		raw  bool
		want string // "" when refused
	}{
		{`{"text":"hi"}`, false, `{"text":"hi"}`},
		{`[1,2]`, false, `[1,2]`},
		{`"quoted"`, false, `"quoted"`},
		{`42`, false, `42`},
		{`-1.5e3`, false, `-1.5e3`},
		{`true`, false, `true`},
		{`hello`, false, `"hello"`},
		{`two words`, false, `"two words"`},
		{`42 apples`, false, `"42 apples"`},
		{`nullable`, false, `"nullable"`},
		{`no`, false, `"no"`},
		{`{text:hi}`, false, ""}, // the shell ate the quotes
		{`{"text":"hi"`, false, ""},
		{`[1,2`, false, ""},
		{`"unterminated`, false, ""},
		{`1.5.2`, false, ""},
		{`0x1F`, false, ""},
		{`01`, false, ""},
		{`+5`, false, ""},
		{`True`, false, ""},
		{`NULL`, false, ""},
		{`nul`, false, ""},
		{`fals`, false, ""},
		{`{text:hi}`, true, `"{text:hi}"`},
		{`1.5.2`, true, `"1.5.2"`},
		{`{"text":"hi"}`, true, `"{\"text\":\"hi\"}"`},
	} {
		got, err := parseData(tc.arg, tc.raw)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%q: sent as %s, want it refused", tc.arg, got)
		case tc.want == "" && !strings.Contains(err.Error(), "--raw"):
			t.Errorf("%q: the refusal does not mention --raw: %v", tc.arg, err)
		case tc.want != "" && (err != nil || string(got) != tc.want):
			t.Errorf("%q raw=%v: got %s %v, want %s", tc.arg, tc.raw, got, err, tc.want)
		}
	}
}
