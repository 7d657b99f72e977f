package redis

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/internal/protocol"
)

// codecVersion leads every encoded message, so that nodes of different
// versions can tell each other's messages apart during a rolling upgrade.
// Version 2 added the sender exclusions.
const codecVersion = 2

// PositionedMark leads a message published by the store as it stores it:
// the mark, the message's offset (or inbox sequence) in decimal, a space,
// the channel's epoch (empty for an inbox), a space, then the message as
// Encode wrote it without its position. A Lua script builds it by
// concatenation, the one thing it can do with an encoded message; see
// internal/store/redis.
const PositionedMark = '\x03'

var errBadMessage = errors.New("redis broker: undecodable message")

// Encode returns m in the compact form that crosses Redis. The store
// publishes it, positioned, when it stores m.
func Encode(m *protocol.Message) []byte {
	return encode(make([]byte, 0, 64+len(m.ID)+len(m.Channel)+len(m.To)+len(m.Data)), m)
}

// encode appends m to buf in the compact form that crosses Redis: a
// version byte, the strings each behind its length, the numbers as
// varints, and the data to the end. It is faster to write and read than
// JSON, and a message is encoded once, whatever the number of nodes.
//
// The exclusions travel too: client ids are unique across nodes, so the
// node that holds the excluded connection leaves it out, and the others
// find no such connection.
func encode(buf []byte, m *protocol.Message) []byte {
	buf = append(buf, codecVersion)
	for _, s := range [...]string{m.ID, string(m.Kind), m.Channel, m.To, m.From, m.Epoch, m.ExceptClient, m.ExceptUser} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	buf = binary.AppendUvarint(buf, m.Offset)
	buf = binary.AppendUvarint(buf, m.Seq)
	buf = binary.AppendVarint(buf, m.Time)
	return append(buf, m.Data...)
}

// decode reads a message written by encode, positioned or not.
func decode(b []byte) (*protocol.Message, error) {
	if len(b) > 0 && b[0] == PositionedMark {
		return decodePositioned(b[1:])
	}
	if len(b) == 0 || b[0] != codecVersion {
		return nil, errBadMessage
	}
	b = b[1:]
	var fields [8]string
	for i := range fields {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errBadMessage
		}
		fields[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	m := &protocol.Message{ID: fields[0], Kind: protocol.Kind(fields[1]), Channel: fields[2], To: fields[3], From: fields[4], Epoch: fields[5],
		ExceptClient: fields[6], ExceptUser: fields[7]}
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

// decodePositioned reads "POSITION EPOCH MESSAGE" after the mark: the
// position is the offset of a channel message, the sequence of a direct
// one.
func decodePositioned(b []byte) (*protocol.Message, error) {
	s := string(b[:min(len(b), 64)])
	num, rest, ok := strings.Cut(s, " ")
	if !ok {
		return nil, errBadMessage
	}
	pos, err := strconv.ParseUint(num, 10, 64)
	if err != nil || pos == 0 {
		return nil, errBadMessage
	}
	epoch, _, ok := strings.Cut(rest, " ")
	if !ok {
		return nil, errBadMessage
	}
	m, err := decode(b[len(num)+1+len(epoch)+1:])
	if err != nil || m.Offset != 0 || m.Seq != 0 {
		return nil, errBadMessage
	}
	switch m.Kind {
	case protocol.KindChannel:
		m.Offset, m.Epoch = pos, epoch
	case protocol.KindDirect:
		m.Seq = pos
	default:
		return nil, errBadMessage
	}
	return m, nil
}
