package api

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/heraldpush/herald/internal/protocol"
)

// Reading what the server keeps: receipts of direct messages, channel
// history and inboxes. Times are Unix milliseconds, as a message's ts.

// ErrNotFound is what Backend.Receipt returns for a message with no
// receipt.
var ErrNotFound = errors.New("not found")

// Receipt is what became of one direct message.
type Receipt struct {
	ID   string `json:"id"`
	User string `json:"user"`
	// Seq is the message's sequence in User's inbox.
	Seq      uint64          `json:"seq"`
	Accepted int64           `json:"accepted"`
	Devices  []DeviceReceipt `json:"devices"`
}

// DeviceReceipt is when one device of the recipient got the message.
type DeviceReceipt struct {
	Device string `json:"device"`
	// State is acked, delivered (handed to the device, not acknowledged),
	// pending (not handed to the device yet; it gets it on its next
	// connection) or missed (dropped from the inbox before the device got
	// it: it never will).
	State     string `json:"state"`
	Delivered int64  `json:"delivered,omitempty"`
	Acked     int64  `json:"acked,omitempty"`
}

// Device receipt states.
const (
	StateAcked     = "acked"
	StateDelivered = "delivered"
	StatePending   = "pending"
	StateMissed    = "missed"
)

// HistoryQuery selects messages of a channel's history.
type HistoryQuery struct {
	// From is the first offset returned: the highest when Newest (0: the
	// newest), the lowest otherwise (0: the oldest kept).
	From   uint64
	Newest bool
	Limit  int
}

// History is a page of a channel's history.
type History struct {
	Channel string `json:"channel"`
	// Offset and Epoch are the channel's position.
	Offset   uint64              `json:"offset"`
	Epoch    string              `json:"epoch"`
	Messages []*protocol.Message `json:"messages"`
	// Next is the from of the next page, when there may be one.
	Next *uint64 `json:"next,omitempty"`
}

// Inbox is a user's inbox: its head and known devices, or what one device
// has not acknowledged.
type Inbox struct {
	User string `json:"user"`
	// Head is the sequence of the newest message pushed.
	Head uint64 `json:"head"`
	// Devices are the devices the server knows, without Device.
	Devices []DeviceState `json:"devices,omitempty"`
	// Device, with the messages it has not acknowledged.
	Device *DevicePending `json:"device,omitempty"`
}

// DeviceState is where a known device stands.
type DeviceState struct {
	Device    string `json:"device"`
	Acked     uint64 `json:"acked"`
	Delivered uint64 `json:"delivered"`
	Seen      int64  `json:"seen"`
}

// DevicePending is what one device has not acknowledged.
type DevicePending struct {
	Device string `json:"device"`
	// Known is false for a device the server does not know: it would
	// start at the oldest message kept.
	Known bool   `json:"known"`
	Acked uint64 `json:"acked"`
	// Missed counts the messages after Acked dropped before the device
	// acknowledged them.
	Missed   uint64              `json:"missed"`
	Messages []*protocol.Message `json:"messages"`
}

// Bounds of a read.
const (
	defaultReadLimit = 100
	maxReadLimit     = 1000
)

func (a *API) receipt(r *http.Request) (any, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return nil, errorf(http.StatusBadRequest, "invalid_id", "message id %q is not valid: ids are 1-64 characters from A-Z a-z 0-9 _ -", id)
	}
	rc, err := a.b.Receipt(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "not_found", "no receipt for message %s: it is not a direct message, it was never sent, or its receipt expired with the inbox (inbox-ttl)", id)
	}
	if err != nil {
		return nil, err
	}
	if rc.Devices == nil {
		rc.Devices = []DeviceReceipt{}
	}
	return rc, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (a *API) history(r *http.Request) (any, error) {
	ch := r.PathValue("channel")
	if !protocol.ValidChannel(ch) {
		return nil, fromProtocol(protocol.InvalidChannel(ch))
	}
	q := r.URL.Query()
	if err := onlyParams(q, "limit", "order", "from"); err != nil {
		return nil, err
	}
	hq := HistoryQuery{Newest: true}
	var err error
	if hq.Limit, err = limitParam(q, defaultReadLimit, 1, maxReadLimit); err != nil {
		return nil, err
	}
	switch q.Get("order") {
	case "", "newest":
	case "oldest":
		hq.Newest = false
	default:
		return nil, errorf(http.StatusBadRequest, "invalid_field", "order must be newest or oldest, got %q", q.Get("order"))
	}
	if s := q.Get("from"); s != "" {
		if hq.From, err = strconv.ParseUint(s, 10, 64); err != nil {
			return nil, errorf(http.StatusBadRequest, "invalid_field", "from must be an offset (a whole number from 0), got %q", s)
		}
	}
	h, err := a.b.History(r.Context(), ch, hq)
	if err != nil {
		return nil, err
	}
	if h.Messages == nil {
		h.Messages = []*protocol.Message{}
	}
	return h, nil
}

func (a *API) inbox(r *http.Request) (any, error) {
	u, err := pathUser(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	if err := onlyParams(q, "device", "limit"); err != nil {
		return nil, err
	}
	limit, err := limitParam(q, defaultReadLimit, 1, maxReadLimit)
	if err != nil {
		return nil, err
	}
	device := q.Get("device")
	if q.Has("device") && !protocol.ValidDevice(device) {
		return nil, errorf(http.StatusBadRequest, "invalid_field", "device %q is not valid: use 1-%d characters from A-Z a-z 0-9 _ - . @", device, protocol.MaxDeviceLen)
	}
	if !q.Has("device") && q.Has("limit") {
		return nil, errorf(http.StatusBadRequest, "invalid_field", "limit applies to one device's messages: give device too")
	}
	in, err := a.b.Inbox(r.Context(), u, device, limit)
	if err != nil {
		return nil, err
	}
	if in.Device != nil {
		if in.Device.Messages == nil {
			in.Device.Messages = []*protocol.Message{}
		}
		return in, nil
	}
	if in.Devices == nil {
		in.Devices = []DeviceState{}
	}
	// Without a device, the list is there when empty.
	return struct {
		User    string        `json:"user"`
		Head    uint64        `json:"head"`
		Devices []DeviceState `json:"devices"`
	}{in.User, in.Head, in.Devices}, nil
}

// onlyParams refuses query parameters other than names, and any given
// twice.
func onlyParams(q url.Values, names ...string) error {
	for k, v := range q {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		switch {
		case !known:
			return errorf(http.StatusBadRequest, "invalid_field", "unknown query parameter %q", k)
		case len(v) > 1:
			return errorf(http.StatusBadRequest, "invalid_field", "query parameter %q given %d times", k, len(v))
		}
	}
	return nil
}

// limitParam reads ?limit=N: def when absent, else from lo to hi.
func limitParam(q url.Values, def, lo, hi int) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, errorf(http.StatusBadRequest, "invalid_field", "limit must be a whole number from %d to %d, got %q", lo, hi, s)
	}
	return n, nil
}
