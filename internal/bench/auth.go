package bench

import (
	"fmt"
	"time"

	"github.com/heraldpush/herald/internal/auth"
)

// tokenTTL is the lifetime of minted tokens: longer than any run.
const tokenTTL = time.Hour

// credentials builds the connect frame of each client: an HS256 token, as
// `herald token` mints it, when a secret is set; else the bare user id
// (insecure mode).
type credentials struct {
	key *auth.SigningKey
}

func newCredentials(hmacSecret string) credentials {
	if hmacSecret == "" {
		return credentials{}
	}
	k := auth.HMACKey([]byte(hmacSecret))
	return credentials{key: &k}
}

// connectFrame returns the connect frame for user, naming device when it
// is not empty.
func (c credentials) connectFrame(user, device string) ([]byte, error) {
	if c.key == nil {
		return appendConnect(nil, user, "", device), nil
	}
	tok, err := auth.Mint(*c.key, auth.Claims{}, user, tokenTTL)
	if err != nil {
		return nil, fmt.Errorf("token for %s: %w", user, err)
	}
	return appendConnect(nil, user, tok, device), nil
}
