package transport

import "testing"

func TestSSEEventID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ frame, id string }{
		{`{"type":"message","id":"x","kind":"channel","channel":"chat:a","offset":42,"epoch":"e1","ts":1,"data":{"offset":1}}` + "\n", "chat:a e1 42"},
		{`{"type":"message","id":"x","kind":"channel","channel":"room:a","ts":1,"data":{"offset":1}}` + "\n", ""},
		{`{"type":"message","id":"x","kind":"direct","to":"bob","seq":3,"ts":1,"data":1}` + "\n", ""},
		{`{"type":"reply","id":2,"result":{"offset":42,"epoch":"e1"}}` + "\n", ""},
	} {
		if got := eventID([]byte(tc.frame)); got != tc.id {
			t.Errorf("eventID(%s) = %q, want %q", tc.frame, got, tc.id)
		}
	}
	if got := string(appendEvent(nil, []byte(`{"type":"ping"}`+"\n"))); got != "data: {\"type\":\"ping\"}\n\n" {
		t.Errorf("appendEvent: %q", got)
	}
}
