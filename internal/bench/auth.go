package bench

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenTTL is the lifetime of minted tokens: longer than any run.
const tokenTTL = time.Hour

// credentials builds the connect frame of each client: an HS256 token when
// a secret is set, else the bare user id (insecure mode).
type credentials struct {
	secret []byte
	now    func() time.Time
}

func newCredentials(hmacSecret string) credentials {
	c := credentials{now: time.Now}
	if hmacSecret != "" {
		c.secret = []byte(hmacSecret)
	}
	return c
}

// connectFrame returns the connect frame for user.
func (c credentials) connectFrame(user string) ([]byte, error) {
	if c.secret == nil {
		return appendConnect(nil, user, ""), nil
	}
	tok, err := mintToken(c.secret, user, c.now())
	if err != nil {
		return nil, err
	}
	return appendConnect(nil, user, tok), nil
}

// mintToken signs an HS256 JWT for user: sub=user, exp=now+tokenTTL.
func mintToken(secret []byte, user string, now time.Time) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user,
		"exp": now.Add(tokenTTL).Unix(),
	})
	s, err := t.SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token for %s: %w", user, err)
	}
	return s, nil
}
