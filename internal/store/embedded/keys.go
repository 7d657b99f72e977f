package embedded

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/store"
)

// Key layout. Names may contain '/', so a NUL byte (which no name holds)
// ends a name inside a key; offsets are big-endian and fixed width so that
// keys sort in offset order and a channel's or user's records are one
// contiguous range.
//
//	h/<channel>\x00<offset>  history record: time (8) + data
//	c/<channel>              channel meta: base (8) + epoch
//	i/<user>\x00<seq>        inbox record: time (8) + data
//	u/<user>                 inbox meta: base (8)
//	d/<user>\x00<device>     device position: acked seq (8)
//	r/<user>\x00<seq>        receipt: message id
//	m/<id>                   message id index: time (8) + seq (8) + user
//	k/<key>                  idempotency: time (8) + hash length (1) + hash + result
//
// base is the highest offset ever dropped, so that the next offset is known
// even when every record was trimmed.
const (
	prefixHistory     = "h/"
	prefixChannelMeta = "c/"
	prefixInbox       = "i/"
	prefixInboxMeta   = "u/"
	prefixDevice      = "d/"
	prefixIdempotency = "k/"
	prefixReceipt     = "r/"
	prefixMessageID   = "m/"
)

func validName(s string) error {
	if s == "" || strings.IndexByte(s, 0) >= 0 {
		return store.ErrInvalidName
	}
	return nil
}

// seqPrefix is the prefix of every record of one channel or user.
func seqPrefix(prefix, name string) []byte {
	k := make([]byte, 0, len(prefix)+len(name)+1+8)
	k = append(k, prefix...)
	k = append(k, name...)
	return append(k, 0)
}

func seqKey(prefix, name string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(seqPrefix(prefix, name), seq)
}

// seqOf returns the sequence at the end of a record key.
func seqOf(key []byte) uint64 {
	return binary.BigEndian.Uint64(key[len(key)-8:])
}

func nameKey(prefix, name string) []byte {
	return append([]byte(prefix), name...)
}

func deviceKey(user, device string) []byte {
	return append(seqPrefix(prefixDevice, user), device...)
}

// encodeMessageID is the value of a message id's index key.
func encodeMessageID(at time.Time, seq uint64, user string) []byte {
	v := make([]byte, 16, 16+len(user))
	binary.BigEndian.PutUint64(v, uint64(at.UnixNano()))
	binary.BigEndian.PutUint64(v[8:], seq)
	return append(v, user...)
}

func encodeRecord(at time.Time, data []byte) []byte {
	v := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint64(v, uint64(at.UnixNano()))
	return append(v, data...)
}

func decodeRecord(key, value []byte) (store.Record, bool) {
	if len(value) < 8 || len(key) < 8 {
		return store.Record{}, false
	}
	return store.Record{
		Offset: seqOf(key),
		Time:   time.Unix(0, int64(binary.BigEndian.Uint64(value))),
		Data:   append([]byte(nil), value[8:]...),
	}, true
}
