package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// newVerifier builds the token verifier the configuration asks for, and
// names its key for the log. With no key configured, the server uses the
// secret in its data directory, created on first start, in every mode: an
// insecure server accepts the tokens `herald token` mints there as well
// as declared user ids.
func newVerifier(cfg config.Config, log *slog.Logger) (*auth.Verifier, string, error) {
	checks := []auth.Option{auth.WithAudience(cfg.TokenAudience), auth.WithIssuer(cfg.TokenIssuer)}
	switch {
	case cfg.TokenPublicKey != "":
		pem, err := os.ReadFile(cfg.TokenPublicKey)
		if err != nil {
			return nil, "", fmt.Errorf("token public key: %w", err)
		}
		v, err := auth.NewPublicKey(pem, checks...)
		if err != nil {
			return nil, "", fmt.Errorf("token public key %s: %w", cfg.TokenPublicKey, err)
		}
		return v, v.Algorithm() + " public key " + cfg.TokenPublicKey, nil
	case cfg.TokenSecret != "":
		v, err := auth.NewHMAC([]byte(cfg.TokenSecret), checks...)
		return v, "HS256 secret of the token-secret setting", err
	}
	secret, err := auth.LoadOrCreateSecret(cfg.DataDir)
	if err != nil {
		return nil, "", fmt.Errorf("--data-dir %s: %w", cfg.DataDir, err)
	}
	if secret.Warning != "" {
		log.Warn(secret.Warning, "path", secret.Path)
	}
	if secret.Created {
		log.Info("created a token secret; mint a connection token with `herald token --user USER` in this directory, or with --data-dir "+filepath.Dir(secret.Path), "path", secret.Path)
	}
	v, err := auth.NewHMAC(secret.Key, checks...)
	return v, "HS256 secret file " + secret.Path, err
}

// Authenticate implements session.Node: a valid token; without one, the
// connect hook's answer when there is a hook, else in insecure mode a
// declared user id. Refusals are logged at info level, sampled.
func (n node) Authenticate(ctx context.Context, sess *session.Session, req *protocol.Request) (session.Identity, *protocol.Error) {
	var id session.Identity
	var perr *protocol.Error
	var detail error
	if req.Token == "" && n.s.authHooks.connect != nil {
		id, perr, detail = n.s.authHooks.askConnect(ctx, sess, req)
	} else {
		id, perr, detail = n.s.authenticate(req)
	}
	if perr != nil {
		n.s.connLog.refused(sess, req.User, perr, detail)
	}
	return id, perr
}

// authenticate checks the credentials of a connect frame. A refusal comes
// with the error for the client and, when there is one, the verifier's
// detail for the log.
func (s *Server) authenticate(req *protocol.Request) (session.Identity, *protocol.Error, error) {
	if req.Token != "" || !s.cfg.Insecure {
		c, err := s.verifier.Verify(req.Token)
		if err != nil {
			msg := "token is invalid"
			switch {
			case errors.Is(err, auth.ErrMissing) && req.User != "":
				msg = "a token is required: only a server in insecure mode takes a declared user id without one"
			case errors.Is(err, auth.ErrMissing):
				msg = "a token is required: connect with {\"op\":\"connect\",\"token\":...}"
			case errors.Is(err, auth.ErrExpired):
				msg = "token has expired"
			case errors.Is(err, auth.ErrAudience):
				msg = "token is not for this server: its \"aud\" claim lacks the server's token-audience"
			case errors.Is(err, auth.ErrIssuer):
				msg = "token is not from this server's issuer: its \"iss\" claim is not the server's token-issuer"
			case errors.Is(err, auth.ErrMalformed):
				msg = "token is malformed: a token is a JWT, three base64url parts joined by dots"
			case errors.Is(err, auth.ErrAlgorithm):
				msg = "token is signed with another algorithm than the " + s.verifier.Algorithm() + " this server accepts"
			case errors.Is(err, auth.ErrSignature):
				msg = "token signature does not match this server's key: mint tokens with the key the server uses " +
					"(its log names it at start; for herald token, run it with the server's --data-dir or --token-secret)"
			}
			return session.Identity{}, protocol.Errorf(protocol.CodeUnauthorized, "%s", msg), err
		}
		if !protocol.ValidUser(c.Subject) {
			return session.Identity{}, protocol.Errorf(protocol.CodeUnauthorized, "token subject %q is not a valid user id", c.Subject), nil
		}
		if req.User != "" && req.User != c.Subject {
			return session.Identity{}, protocol.Errorf(protocol.CodeUnauthorized, "declared user %q does not match the token's subject", req.User), nil
		}
		return session.Identity{User: c.Subject, Grants: c.Channels, Info: c.Info}, nil, nil
	}
	if req.User == "" {
		return session.Identity{}, protocol.Errorf(protocol.CodeMissingField, "field \"user\" (or \"token\") is required"), nil
	}
	return session.Identity{User: req.User}, nil, nil
}
