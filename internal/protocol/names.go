package protocol

import "strings"

// Limits on names, documented in docs/protocol.md.
const (
	MaxChannelLen = 128
	MaxUserLen    = 64
	MaxDeviceLen  = 64
)

// ValidChannel reports whether name is a valid channel name: 1 to 128
// characters from A-Z a-z 0-9 and _ - . : @ / =. The part before the first
// ':' is the channel's namespace ("room:42" is in namespace "room").
func ValidChannel(name string) bool {
	return validName(name, MaxChannelLen, true)
}

// ValidUser reports whether id is a valid user id: 1 to 64 characters from
// A-Z a-z 0-9 and _ - . @.
func ValidUser(id string) bool {
	return validName(id, MaxUserLen, false)
}

// ValidDevice reports whether id is a valid device id: the same form as a
// user id.
func ValidDevice(id string) bool {
	return validName(id, MaxDeviceLen, false)
}

// Namespace returns the namespace of a channel: the part before the first
// ':', or "" when the channel has none.
func Namespace(channel string) string {
	if i := strings.IndexByte(channel, ':'); i >= 0 {
		return channel[:i]
	}
	return ""
}

func validName(s string, max int, channel bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == '@':
		case channel && (c == ':' || c == '/' || c == '='):
		default:
			return false
		}
	}
	return true
}
