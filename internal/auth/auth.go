// Package auth verifies and mints the signed connection tokens (JWT) that
// prove a client's identity: HS256 with a shared secret, or RS256 / ES256
// with a key pair. A token's "sub" is the user id, "exp" is required, the
// optional "channels" claim lists channel patterns the user may subscribe
// to, and the optional "info" claim is attached to the user's presence. A
// verifier may also require an audience ("aud") and an issuer ("iss").
package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by Verify; each wraps the library's detail.
var (
	ErrMissing  = errors.New("token is missing")
	ErrInvalid  = errors.New("token is invalid")
	ErrExpired  = errors.New("token has expired")
	ErrAudience = errors.New("token is not for this audience")
	ErrIssuer   = errors.New("token is not from this issuer")
	// ErrMalformed is a token that is not a JWT at all.
	ErrMalformed = errors.New("token is malformed")
	// ErrAlgorithm is a token signed with an algorithm this verifier does
	// not accept, "none" included.
	ErrAlgorithm = errors.New("token is signed with another algorithm")
	// ErrSignature is a token of the right algorithm whose signature does
	// not verify: it was signed with another secret or key.
	ErrSignature = errors.New("token signature does not verify with this key")
)

// Claims are the claims Herald reads.
type Claims struct {
	jwt.RegisteredClaims
	// Channels are patterns ("room:*", "news:sport") of channels the user
	// may subscribe to beyond what namespace rules allow everyone.
	Channels []string `json:"channels,omitempty"`
	// Info is free-form user information shown in presence.
	Info json.RawMessage `json:"info,omitempty"`
}

// Verifier checks tokens against one key. Only the algorithm family of that
// key is accepted: an HS256 token is refused by an RS256 verifier (and the
// reverse), and "none" never passes.
type Verifier struct {
	key      any
	methods  []string
	leeway   time.Duration
	audience string // "": not checked
	issuer   string // "": not checked
}

// Option adds a check to a Verifier.
type Option func(*Verifier)

// WithAudience refuses tokens whose "aud" claim does not contain audience
// (compared exactly, case included); "" checks nothing.
func WithAudience(audience string) Option { return func(v *Verifier) { v.audience = audience } }

// WithIssuer refuses tokens whose "iss" claim is not issuer (compared
// exactly); "" checks nothing.
func WithIssuer(issuer string) Option { return func(v *Verifier) { v.issuer = issuer } }

func newVerifier(key any, method string, opts []Option) *Verifier {
	v := &Verifier{key: key, methods: []string{method}, leeway: 5 * time.Second}
	for _, o := range opts {
		o(v)
	}
	return v
}

// NewHMAC returns a verifier for HS256 tokens signed with secret.
func NewHMAC(secret []byte, opts ...Option) (*Verifier, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("token secret is %d bytes; use at least 32", len(secret))
	}
	return newVerifier(secret, "HS256", opts), nil
}

// NewPublicKey returns a verifier for RS256 or ES256 tokens, from a PEM
// public key file; the key type picks the algorithm.
func NewPublicKey(pemBytes []byte, opts ...Option) (*Verifier, error) {
	if k, err := jwt.ParseRSAPublicKeyFromPEM(pemBytes); err == nil {
		return newVerifier(k, "RS256", opts), nil
	}
	if k, err := jwt.ParseECPublicKeyFromPEM(pemBytes); err == nil {
		return newVerifier(k, "ES256", opts), nil
	}
	return nil, errors.New("public key is neither an RSA nor an ECDSA PEM public key")
}

// Algorithm is the signing algorithm the verifier accepts: HS256, RS256 or
// ES256.
func (v *Verifier) Algorithm() string { return v.methods[0] }

// Verify parses and checks a token and returns its claims.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrMissing
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.leeway),
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	var c Claims
	tok, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil }, opts...)
	// The library checks the signature before the claims, so when the
	// claims are what failed they can be read to say which. A token for
	// another audience or issuer is reported as such before expiry: a
	// fresh one would fail the same way.
	claimsFailed := errors.Is(err, jwt.ErrTokenInvalidClaims)
	switch {
	case claimsFailed && v.audience != "" && !slices.Contains(c.Audience, v.audience):
		return nil, fmt.Errorf("%w: %v", ErrAudience, err)
	case claimsFailed && v.issuer != "" && c.Issuer != v.issuer:
		return nil, fmt.Errorf("%w: %v", ErrIssuer, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, fmt.Errorf("%w: %v", ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && tok != nil && tok.Method != nil && !slices.Contains(v.methods, tok.Method.Alg()):
		return nil, fmt.Errorf("%w: %s, not %s", ErrAlgorithm, tok.Method.Alg(), v.Algorithm())
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	case c.Subject == "":
		return nil, fmt.Errorf("%w: no \"sub\" claim", ErrInvalid)
	}
	return &c, nil
}

// SigningKey is a key that signs tokens, with its algorithm.
type SigningKey struct {
	method jwt.SigningMethod
	key    any
}

// HMACKey signs HS256 tokens with secret.
func HMACKey(secret []byte) SigningKey { return SigningKey{jwt.SigningMethodHS256, secret} }

// ParsePrivateKey reads a PEM RSA or ECDSA (P-256) private key, for RS256
// or ES256 tokens.
func ParsePrivateKey(pemBytes []byte) (SigningKey, error) {
	if k, err := jwt.ParseRSAPrivateKeyFromPEM(pemBytes); err == nil {
		return SigningKey{jwt.SigningMethodRS256, k}, nil
	}
	if k, err := jwt.ParseECPrivateKeyFromPEM(pemBytes); err == nil {
		return SigningKey{jwt.SigningMethodES256, k}, nil
	}
	return SigningKey{}, errors.New("private key is neither an RSA nor an ECDSA PEM private key")
}

// Mint signs a token for user, valid for ttl, with the channels, info,
// audience and issuer of extra.
func Mint(k SigningKey, extra Claims, user string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   user,
			Audience:  extra.Audience,
			Issuer:    extra.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Channels: extra.Channels,
		Info:     extra.Info,
	}
	tok, err := jwt.NewWithClaims(k.method, c).SignedString(k.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return tok, nil
}
