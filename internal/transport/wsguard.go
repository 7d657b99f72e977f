package transport

import (
	"encoding/binary"
	"time"

	"golang.org/x/time/rate"
)

// frameGuard reads the header of every WebSocket frame a client sends
// before the WebSocket engine parses it, and stops the stream at the first
// frame the server must refuse, or at the client's close frame, which the
// server answers itself (see wsConn.onData). The engine reads a 64-bit
// length with the top bit set as negative, which passes its size check and
// has it buffer up to its read limit; it accepts unmasked client frames,
// which RFC 6455 section 5.1 says end the connection; and it answers every
// ping, however many. The guard is fed the bytes in the order they arrive,
// by one goroutine at a time.
type frameGuard struct {
	limits *guardLimits
	pings  *rate.Limiter // made on the first ping

	header  [14]byte // the frame header read so far
	have    int      // bytes in header
	skip    uint64   // payload bytes of the current frame still to come
	message uint64   // bytes of the data message so far, fragments summed
}

// violation is why the guard stopped a stream.
type violation uint8

const (
	violationNone     violation = iota
	violationTooLarge           // a data message over the limit
	violationUnmasked           // a client frame without a mask
	violationPings              // pings faster than the operation rate
	violationClose              // a close frame: no fault, but the stream ends there
)

// guardLimits are the bounds every guard of a server applies.
type guardLimits struct {
	maxMessage     uint64  // largest data message, fragments summed
	pingsPerSecond float64 // pings, sustained: the operation rate
	pingBurst      int
}

// scan reads data. It returns how many bytes of data precede the header of
// a refused frame (all of it when none is refused) and why it refused.
// Once it refuses, the stream is over.
func (g *frameGuard) scan(data []byte) (int, violation) {
	pos := 0
	for pos < len(data) {
		if g.skip > 0 {
			n := uint64(len(data) - pos)
			if n > g.skip {
				n = g.skip
			}
			g.skip -= n
			pos += int(n)
			continue
		}
		start := pos - g.have // where this frame's header began (may be negative: in an earlier read)
		need := 2
		if g.have >= 2 {
			need = headerLen(g.header[1])
		}
		for g.have < need && pos < len(data) {
			g.header[g.have] = data[pos]
			g.have++
			pos++
			if g.have == 2 {
				need = headerLen(g.header[1])
			}
		}
		if g.have < need {
			break // the rest of the header is in a later read
		}
		g.have = 0
		if v := g.frame(); v != violationNone {
			return max(start, 0), v
		}
	}
	return len(data), violationNone
}

// headerLen is the length of a client frame header from its second byte.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// frame checks a complete header and sets up skipping its payload.
func (g *frameGuard) frame() violation {
	b0, b1 := g.header[0], g.header[1]
	if b1&0x80 == 0 {
		return violationUnmasked
	}
	length := uint64(b1 & 0x7F)
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(g.header[2:4]))
	case 127:
		length = binary.BigEndian.Uint64(g.header[2:10])
	}
	g.skip = length
	fin := b0&0x80 != 0
	switch opcode := b0 & 0x0F; opcode {
	case 0x0, 0x1, 0x2: // continuation, text, binary
		if opcode != 0x0 {
			g.message = 0
		}
		// A length with the top bit set is over any limit too.
		if length > g.limits.maxMessage || g.message+length > g.limits.maxMessage {
			return violationTooLarge
		}
		g.message += length
		if fin {
			g.message = 0
		}
	case 0x8: // close
		return violationClose
	case 0x9: // ping
		if g.pings == nil {
			g.pings = rate.NewLimiter(rate.Limit(g.limits.pingsPerSecond), g.limits.pingBurst)
		}
		if !g.pings.AllowN(time.Now(), 1) {
			return violationPings
		}
	}
	return violationNone
}
