package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
)

func newToken(stdout io.Writer) *cobra.Command {
	var (
		user, info, privateKey string
		audience, issuer       string
		channels               []string
		ttl                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token --user USER [--channels PATTERN,...] [--ttl 24h] [--audience AUD] [--issuer ISS]",
		Short: "Mint a connection token for a user",
		Long: `Mint a signed connection token (JWT) for a user and print it.

By default the token is HS256, signed with the server's secret: the same
--token-secret, HERALD_TOKEN_SECRET or config file the server reads, or
else the secret file in --data-dir (./herald-data by default), which the
server reads, or creates on first start, in every mode. Run it in the
directory the server runs in, or give it the server's --data-dir; it says
on stderr which secret it used, and warns when it had to create one (a
server with another data directory will refuse the token). With
--private-key it is RS256 or ES256 (by the key's type), for servers
started with --token-public-key.

--audience and --issuer set the token's "aud" and "iss" claims; by default
they are the server's token-audience and token-issuer settings, read the
same way, so the token passes the server's checks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !protocol.ValidUser(user) {
				return fmt.Errorf("--user %q is not a valid user id (1-%d characters from A-Z a-z 0-9 _ - . @)", user, protocol.MaxUserLen)
			}
			if ttl <= 0 {
				return errors.New("--ttl must be positive")
			}
			for _, p := range channels {
				if !validPattern(p) {
					return fmt.Errorf("--channels %q is not a channel pattern: channel characters (A-Z a-z 0-9 _ - . : @ / =) with * and ?", p)
				}
			}
			var rawInfo json.RawMessage
			if info != "" {
				if !json.Valid([]byte(info)) {
					return errors.New("--info must be JSON")
				}
				rawInfo = json.RawMessage(info)
			}
			cfg, err := config.Load(cmd.Flags(), os.Environ)
			if err != nil {
				return err
			}
			if unknown := config.UnknownEnv(cmd.Flags(), os.Environ); len(unknown) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: ignoring environment variables that name no setting: %s\n", strings.Join(unknown, ", "))
			}
			key, err := signingKey(cmd, cfg, privateKey)
			if err != nil {
				return err
			}
			claims := auth.Claims{Channels: channels, Info: rawInfo}
			if !cmd.Flags().Changed("audience") {
				audience = cfg.TokenAudience
			}
			if !cmd.Flags().Changed("issuer") {
				issuer = cfg.TokenIssuer
			}
			if audience != "" {
				claims.Audience = []string{audience}
			}
			claims.Issuer = issuer
			tok, err := auth.Mint(key, claims, user, ttl)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, tok)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "user id (the token's sub claim)")
	f.StringSliceVar(&channels, "channels", nil, "channel patterns the user may subscribe to beyond the namespace rules (room:*)")
	f.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	f.StringVar(&info, "info", "", "JSON user info shown in presence")
	f.StringVar(&privateKey, "private-key", "", "PEM private key file: mint RS256 or ES256 instead of HS256")
	f.StringVar(&audience, "audience", "", `the token's "aud" claim (default: the server's token-audience)`)
	f.StringVar(&issuer, "issuer", "", `the token's "iss" claim (default: the server's token-issuer)`)
	_ = cmd.MarkFlagRequired("user")
	// The server's settings are read so that the secret is found the way
	// the server finds it; only the ones that locate it are worth showing.
	config.RegisterFlags(f)
	f.VisitAll(func(fl *pflag.Flag) {
		switch fl.Name {
		case "user", "channels", "ttl", "info", "private-key", "audience", "issuer", "config", "data-dir", "token-secret":
		default:
			_ = f.MarkHidden(fl.Name)
		}
	})
	return cmd
}

// signingKey returns the key to sign with: a private key file, or the
// server's HS256 secret found the way the server finds it. It tells
// stderr which, so that a token the server refuses can be traced to the
// wrong secret.
func signingKey(cmd *cobra.Command, cfg config.Config, privateKey string) (auth.SigningKey, error) {
	stderr := cmd.ErrOrStderr()
	if privateKey != "" {
		pem, err := os.ReadFile(privateKey)
		if err != nil {
			return auth.SigningKey{}, fmt.Errorf("read private key: %w", err)
		}
		k, err := auth.ParsePrivateKey(pem)
		if err == nil {
			fmt.Fprintf(stderr, "herald token: signed with the private key in %s\n", privateKey)
		}
		return k, err
	}
	if cfg.TokenSecret != "" {
		fmt.Fprintln(stderr, "herald token: signed with the token-secret setting")
		return auth.HMACKey([]byte(cfg.TokenSecret)), nil
	}
	secret, err := auth.LoadOrCreateSecret(cfg.DataDir)
	if err != nil {
		return auth.SigningKey{}, err
	}
	if secret.Warning != "" {
		fmt.Fprintf(stderr, "warning: %s: %s\n", secret.Path, secret.Warning)
	}
	if secret.Created {
		fmt.Fprintf(stderr, "warning: there was no token secret in %s, so a new one was created: %s.\n"+
			"A server accepts this token only if it uses that secret: run the server in this directory\n"+
			"or with --data-dir %s (a server already running elsewhere has its own secret:\n"+
			"run herald token where it runs, or with its --data-dir).\n",
			filepath.Dir(secret.Path), secret.Path, filepath.Dir(secret.Path))
	} else {
		fmt.Fprintf(stderr, "herald token: signed with the secret in %s\n", secret.Path)
	}
	return auth.HMACKey(secret.Key), nil
}

// validPattern reports whether p is a channel name in which * and ? may
// stand for characters.
func validPattern(p string) bool {
	if _, err := path.Match(p, ""); err != nil {
		return false
	}
	return protocol.ValidChannel(strings.NewReplacer("*", "x", "?", "x").Replace(p))
}
