package redis

import (
	"encoding/binary"
	"errors"

	"github.com/heraldpush/herald/internal/protocol"
)

// codecVersion leads every encoded message, so that nodes of different
// versions can tell each other's messages apart during a rolling upgrade.
const codecVersion = 1

var errBadMessage = errors.New("redis broker: undecodable message")

// encode appends m to buf in the compact form that crosses Redis: a
// version byte, the strings each behind its length, the numbers as
// varints, and the data to the end. It is faster to write and read than
// JSON, and a message is encoded once, whatever the number of nodes.
func encode(buf []byte, m *protocol.Message) []byte {
	buf = append(buf, codecVersion)
	for _, s := range [...]string{m.ID, string(m.Kind), m.Channel, m.To, m.From, m.Epoch} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	buf = binary.AppendUvarint(buf, m.Offset)
	buf = binary.AppendUvarint(buf, m.Seq)
	buf = binary.AppendVarint(buf, m.Time)
	return append(buf, m.Data...)
}

// decode reads a message written by encode.
func decode(b []byte) (*protocol.Message, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, errBadMessage
	}
	b = b[1:]
	var fields [6]string
	for i := range fields {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errBadMessage
		}
		fields[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	m := &protocol.Message{ID: fields[0], Kind: protocol.Kind(fields[1]), Channel: fields[2], To: fields[3], From: fields[4], Epoch: fields[5]}
	var k int
	if m.Offset, k = binary.Uvarint(b); k <= 0 {
		return nil, errBadMessage
	}
	b = b[k:]
	if m.Seq, k = binary.Uvarint(b); k <= 0 {
		return nil, errBadMessage
	}
	b = b[k:]
	if m.Time, k = binary.Varint(b); k <= 0 {
		return nil, errBadMessage
	}
	m.Data = b[k:]
	return m, nil
}
