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
//	d/<user>\x00<device>     device: acked seq (8) + delivered seq (8) + last seen (8)
//	r/<user>\x00<seq>        receipt: time (8) + message id
//	m/<id>                   message id index: time (8) + seq (8) + user
//	a/<user>\x00<device>\x00<seq>  ack mark: time (8) + first seq covered (8)
//	v/<user>\x00<device>\x00<seq>  delivered mark: time (8) + first seq covered (8)
//	e/<user>                 escalation position (8)
//	k/<key>                  idempotency: time (8) + hash length (1) + hash + result
//
// base is the highest offset ever dropped, so that the next offset is known
// even when every record was trimmed.
//
// A mark records one cumulative acknowledgement (or delivery) of a device:
// when it happened and which messages it covered, those from the first seq
// covered up to the seq in its key (messages dropped before the device got
// them are not covered). A message's receipt for the device is the first
// mark at or above its seq, if that mark covers it.
const (
	prefixHistory     = "h/"
	prefixChannelMeta = "c/"
	prefixInbox       = "i/"
	prefixInboxMeta   = "u/"
	prefixDevice      = "d/"
	prefixIdempotency = "k/"
	prefixEscalated   = "e/"
	prefixReceipt     = "r/"
	prefixMessageID   = "m/"
	prefixAckMark     = "a/"
	prefixDeliverMark = "v/"
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

func decodeTime(v []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(v)))
}

// markPrefix is the prefix of every mark of one device.
func markPrefix(prefix, user, device string) []byte {
	return append(append(seqPrefix(prefix, user), device...), 0)
}

func markKey(prefix, user, device string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(markPrefix(prefix, user, device), seq)
}

func encodeMark(at time.Time, from uint64) []byte {
	v := binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
	return binary.BigEndian.AppendUint64(v, from)
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
		Time:   decodeTime(value),
		Data:   append([]byte(nil), value[8:]...),
	}, true
}
