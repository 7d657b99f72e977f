package auth

import "path"

// MatchChannel reports whether channel matches one of the patterns. A
// pattern is a channel name in which '*' matches any run of characters
// except '/', and '?' one character ("room:*", "news:*/live").
func MatchChannel(patterns []string, channel string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, channel); ok && err == nil {
			return true
		}
	}
	return false
}
