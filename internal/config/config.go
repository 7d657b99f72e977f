// Package config holds the server configuration: its defaults, the flags
// that set it, and loading from a YAML file, HERALD_* environment variables
// and the command line. Precedence, highest first: command-line flags,
// environment variables, the config file, built-in defaults. It imports no
// other package of Herald.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/redis/rueidis"
	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable the server reads.
const EnvPrefix = "HERALD_"

// MinAPIKeyLen is the shortest API key accepted, in characters. A key is a
// bearer secret like the token secret (at least 32 bytes); 16 random
// characters are beyond guessing, and a one-word key is not.
const MinAPIKeyLen = 16

// Config is the server configuration. Each field's key is the name of its
// flag, in the config file too; its environment variable is the key in
// upper case with '-' as '_' behind EnvPrefix (http -> HERALD_HTTP).
type Config struct {
	HTTP      string `koanf:"http"`
	TCP       string `koanf:"tcp"`
	Insecure  bool   `koanf:"insecure"`
	LogLevel  string `koanf:"log-level"`
	LogFormat string `koanf:"log-format"`

	PingInterval     time.Duration `koanf:"ping-interval"`
	PongTimeout      time.Duration `koanf:"pong-timeout"`
	HandshakeTimeout time.Duration `koanf:"handshake-timeout"`
	ShutdownTimeout  time.Duration `koanf:"shutdown-timeout"`

	MaxFrameBytes    int     `koanf:"max-frame-bytes"`
	MaxOutboundBytes int     `koanf:"max-outbound-bytes"`
	OpsPerSecond     float64 `koanf:"ops-per-second"`
	OpsBurst         int     `koanf:"ops-burst"`
	MaxSubscriptions int     `koanf:"max-subscriptions"`
	MaxConnsPerUser  int     `koanf:"max-connections-per-user"`
	MaxStrikes       int     `koanf:"max-strikes"`
	Writers          int     `koanf:"writers"`

	PublishPerSecond float64       `koanf:"publish-per-second"`
	PublishBurst     int           `koanf:"publish-burst"`
	ConnectsPerIP    float64       `koanf:"connects-per-ip"`
	ConnectsBurst    int           `koanf:"connects-burst"`
	HTTPConnsPerIP   int           `koanf:"http-connections-per-ip"`
	HTTPIdleTimeout  time.Duration `koanf:"http-idle-timeout"`

	DataDir        string   `koanf:"data-dir"`
	TokenSecret    string   `koanf:"token-secret"`
	TokenPublicKey string   `koanf:"token-public-key"`
	TokenAudience  string   `koanf:"token-audience"`
	TokenIssuer    string   `koanf:"token-issuer"`
	APIKeys        []string `koanf:"api-keys"`
	APIMaxBody     int      `koanf:"api-max-body-bytes"`
	AllowedOrigins []string `koanf:"allowed-origins"`
	TrustedProxies []string `koanf:"trusted-proxies"`
	TLSCert        string   `koanf:"tls-cert"`
	TLSKey         string   `koanf:"tls-key"`

	Pprof bool `koanf:"pprof"`

	ClientBroadcast bool `koanf:"client-broadcast"`
	ClientSend      bool `koanf:"client-send"`

	InboxTTL          time.Duration `koanf:"inbox-ttl"`
	InboxMaxMessages  int           `koanf:"inbox-max-messages"`
	InboxMaxBytes     int64         `koanf:"inbox-max-bytes"`
	MaxRecoveryBytes  int           `koanf:"max-recovery-bytes"`
	IdempotencyWindow time.Duration `koanf:"idempotency-window"`

	ReceiptsWebhook       string `koanf:"receipts-webhook"`
	ReceiptsWebhookSecret string `koanf:"receipts-webhook-secret"`

	EventsWebhook       string        `koanf:"events-webhook"`
	EventsWebhookSecret string        `koanf:"events-webhook-secret"`
	OfflineGrace        time.Duration `koanf:"offline-grace"`
	// EscalateAfter is how long a direct message may go unacknowledged by
	// every device of its recipient before message.unacknowledged is
	// posted to the events webhook (0: never).
	EscalateAfter time.Duration `koanf:"escalate-after"`

	// ConnectHook is the backend URL asked on each connect that carries no
	// token; SubscribeHook the one asked on each subscribe in namespaces
	// with subscribe-hook. Both are signed with HookSecret.
	ConnectHook     string        `koanf:"connect-hook"`
	SubscribeHook   string        `koanf:"subscribe-hook"`
	HookSecret      string        `koanf:"hook-secret"`
	HookTimeout     time.Duration `koanf:"hook-timeout"`
	HookConcurrency int           `koanf:"hook-concurrency"`
	// HookHeaders are the HTTP headers of a client's WebSocket upgrade or
	// SSE stream request that the connect hook is given (Cookie,
	// Authorization, ...); none by default.
	HookHeaders []string `koanf:"hook-headers"`

	// Redis, when set, is the URL of the Redis the nodes of a cluster
	// share (redis://[user:password@]host:port/db, rediss:// for TLS;
	// addr=host:port query parameters add Redis Cluster seed nodes): it
	// carries messages between nodes and keeps history, inboxes and
	// presence in place of the embedded store.
	Redis string `koanf:"redis"`
	// RedisPrefix starts every key and pub/sub channel name in Redis, so
	// that several clusters can share one Redis.
	RedisPrefix string `koanf:"redis-prefix"`
	// RedisTLSCA is a PEM file of the certificate authorities a rediss://
	// Redis's certificate is checked against, in place of the system's.
	RedisTLSCA string `koanf:"redis-tls-ca"`
	// NodeTimeout is how long a node of a cluster may go silent before
	// its connections drop out of presence and stats.
	NodeTimeout time.Duration `koanf:"node-timeout"`

	// Namespaces are per-namespace channel rules; file only.
	Namespaces []Namespace `koanf:"namespaces"`
}

// Who may subscribe to a namespace's channels.
const (
	SubscribeAny   = "any"   // any authenticated user
	SubscribeGrant = "grant" // only users whose token grants the channel
	SubscribeOwner = "owner" // only the user the channel names: user:alice is alice's
)

// Who may publish to a namespace's channels.
const (
	PublishClients = "clients" // any client allowed to subscribe, and the server API
	PublishServer  = "server"  // only the server API
)

// Namespace is the rule for channels "<Name>:...". Name "" is for channels
// without a namespace; "*" is the rule for namespaces not listed.
type Namespace struct {
	Name      string `koanf:"name"`
	Subscribe string `koanf:"subscribe"`
	Publish   string `koanf:"publish"`
	// HistorySize is how many messages each channel keeps (0: none, the
	// default: the namespace's messages are not stored). HistoryTTL is how
	// long they are kept; it defaults to DefaultHistoryTTL.
	HistorySize int           `koanf:"history-size"`
	HistoryTTL  time.Duration `koanf:"history-ttl"`
	// PresenceEvents posts channel.join and channel.leave events of the
	// namespace's channels to the events webhook.
	PresenceEvents bool `koanf:"presence-events"`
	// SubscribeHook asks the subscribe hook before each subscribe to the
	// namespace's channels that no grant in the client's identity allows.
	SubscribeHook bool `koanf:"subscribe-hook"`
}

// checkNamespaceKeys refuses a namespaces list whose rules are not maps of
// Namespace's keys: a misspelt key (histroy-size) would otherwise leave
// its setting at the default without a word.
func checkNamespaceKeys(v any) error {
	known := map[string]bool{}
	t := reflect.TypeFor[Namespace]()
	for i := range t.NumField() {
		known[t.Field(i).Tag.Get("koanf")] = true
	}
	rules, ok := v.([]any)
	if !ok {
		return errors.New(`namespaces: must be a list of rules, such as [{name: chat, subscribe: any, publish: clients}]`)
	}
	for i, r := range rules {
		rule, ok := r.(map[string]any)
		if !ok {
			return fmt.Errorf("namespaces: rule %d is not a map of settings", i+1)
		}
		for key := range rule {
			if !known[key] {
				names := slices.Sorted(maps.Keys(known))
				return fmt.Errorf("namespaces: rule %d (%v): unknown key %q; a rule takes %s", i+1, rule["name"], key, strings.Join(names, ", "))
			}
		}
	}
	return nil
}

// Bounds of a namespace's history.
const (
	MaxHistorySize    = 100_000
	MaxHistoryTTL     = 90 * 24 * time.Hour
	DefaultHistoryTTL = 24 * time.Hour
)

// History reports whether the namespace keeps history, and for how long:
// HistoryTTL, or the default when it is unset.
func (ns Namespace) History() (size int, ttl time.Duration) {
	if ns.HistorySize == 0 {
		return 0, 0
	}
	if ns.HistoryTTL == 0 {
		return ns.HistorySize, DefaultHistoryTTL
	}
	return ns.HistorySize, ns.HistoryTTL
}

// MaxOfflineGrace bounds offline-grace: a user is reported offline within
// an hour of leaving.
const MaxOfflineGrace = time.Hour

// MaxHookTimeout bounds hook-timeout: a client waits for the connect hook
// within its handshake, and a longer wait is a hang by another name.
const MaxHookTimeout = time.Minute

// pointsAt reports whether u names the listen address addr on this host,
// as far as the names tell without resolving them: the same port on a
// loopback name, or on the address listened on.
func pointsAt(u *url.URL, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return false
	}
	uport := u.Port()
	if uport == "" {
		uport = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if uport != port {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") || h == host {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// validHeaderName reports whether name is an HTTP header field name (an
// RFC 9110 token).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// DefaultNamespaces apply when the config lists none of these names.
func DefaultNamespaces() []Namespace {
	return []Namespace{
		{Name: "*", Subscribe: SubscribeAny, Publish: PublishClients},
		{Name: "user", Subscribe: SubscribeOwner, Publish: PublishServer},
	}
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		HTTP:             "127.0.0.1:7600",
		TCP:              "127.0.0.1:7601",
		LogLevel:         "info",
		LogFormat:        "text",
		PingInterval:     25 * time.Second,
		PongTimeout:      10 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		ShutdownTimeout:  10 * time.Second,
		MaxFrameBytes:    64 << 10,
		MaxOutboundBytes: 1 << 20,
		OpsPerSecond:     50,
		OpsBurst:         100,
		MaxSubscriptions: 128,
		MaxConnsPerUser:  16,
		MaxStrikes:       10,
		PublishPerSecond: 20,
		PublishBurst:     40,
		ConnectsPerIP:    50,
		ConnectsBurst:    100,
		HTTPConnsPerIP:   256,
		HTTPIdleTimeout:  30 * time.Second,
		DataDir:          "herald-data",
		APIMaxBody:       4 << 20,
		ClientSend:       true,

		InboxTTL:          7 * 24 * time.Hour,
		InboxMaxMessages:  1000,
		InboxMaxBytes:     1 << 20,
		MaxRecoveryBytes:  8 << 20,
		IdempotencyWindow: 24 * time.Hour,
		OfflineGrace:      5 * time.Second,
		HookTimeout:       3 * time.Second,
		HookConcurrency:   64,
		RedisPrefix:       "herald",
		NodeTimeout:       30 * time.Second,
	}
}

// RegisterFlags defines one flag per field on fs, with the defaults as
// their defaults, plus --config for the file path.
func RegisterFlags(fs *pflag.FlagSet) {
	d := Default()
	fs.String("config", "", "YAML config file; keys are these flag names (env "+EnvPrefix+"CONFIG)")
	fs.String("http", d.HTTP, "HTTP listen address: WebSocket at /ws, server API under /v1")
	fs.String("tcp", d.TCP, "raw TCP listen address (newline-delimited JSON); empty disables it")
	fs.Bool("insecure", d.Insecure, "development only: accept the user id a client declares, without a token")
	fs.String("log-level", d.LogLevel, "log level: debug, info, warn or error")
	fs.String("log-format", d.LogFormat, "log format: text (key=value) or json (one object a line)")
	fs.Duration("ping-interval", d.PingInterval, "how often the server pings each client (whole seconds, at least 1s)")
	fs.Duration("pong-timeout", d.PongTimeout, "how long past a ping interval a silent client is kept (whole seconds, at least 1s)")
	fs.Duration("handshake-timeout", d.HandshakeTimeout, "time a new connection has to send a successful connect")
	fs.Duration("shutdown-timeout", d.ShutdownTimeout, "how long a graceful shutdown may take")
	fs.Int("max-frame-bytes", d.MaxFrameBytes, "largest frame or line a client may send")
	fs.Int("max-outbound-bytes", d.MaxOutboundBytes, "bytes queued for one connection before it is dropped as a slow consumer")
	fs.Float64("ops-per-second", d.OpsPerSecond, "operations per second one connection may sustain")
	fs.Int("ops-burst", d.OpsBurst, "operations one connection may send in a burst")
	fs.Int("max-subscriptions", d.MaxSubscriptions, "channels one connection may subscribe to (0: no limit)")
	fs.Int("max-connections-per-user", d.MaxConnsPerUser, "connections one user may hold at once (0: no limit)")
	fs.Int("max-strikes", d.MaxStrikes, "failed operations in a row before a connection is closed (0: never)")
	fs.Int("writers", d.Writers, "goroutines writing to sockets (0: one per CPU)")
	fs.Float64("publish-per-second", d.PublishPerSecond, "publish, send and broadcast operations per second one connection may sustain")
	fs.Int("publish-burst", d.PublishBurst, "publish, send and broadcast operations one connection may send in a burst")
	fs.Float64("connects-per-ip", d.ConnectsPerIP, "new connections per second from one client IP, the forwarded one behind --trusted-proxies (0: no limit)")
	fs.Int("connects-burst", d.ConnectsBurst, "new connections one source IP may open in a burst")
	fs.Int("http-connections-per-ip", d.HTTPConnsPerIP, "HTTP connections one source IP may hold open at once, WebSockets until upgraded; --trusted-proxies are exempt (0: no limit)")
	fs.Duration("http-idle-timeout", d.HTTPIdleTimeout, "how long an idle keep-alive HTTP connection is kept open")
	fs.String("data-dir", d.DataDir, "directory for the generated token secret and stored data")
	fs.String("token-secret", d.TokenSecret, "HS256 secret for connection tokens (default: generated in --data-dir)")
	fs.String("token-public-key", d.TokenPublicKey, "PEM public key file for RS256 or ES256 connection tokens")
	fs.String("token-audience", d.TokenAudience, `refuse connection tokens whose "aud" claim does not contain this value (empty: not checked)`)
	fs.String("token-issuer", d.TokenIssuer, `refuse connection tokens whose "iss" claim is not this value (empty: not checked)`)
	fs.StringSlice("api-keys", d.APIKeys, "server API keys (Authorization: Bearer KEY), at least 16 characters each; several allow rotation")
	fs.Int("api-max-body-bytes", d.APIMaxBody, "largest server API request body")
	fs.StringSlice("allowed-origins", d.AllowedOrigins, "origins allowed to open WebSockets (scheme://host[:port], or *); default: same host only")
	fs.StringSlice("trusted-proxies", d.TrustedProxies, "reverse proxies (CIDR ranges or addresses) trusted to name the client in X-Forwarded-For or Forwarded; exempt from --http-connections-per-ip; raw TCP is not covered")
	fs.String("tls-cert", d.TLSCert, "TLS certificate file (PEM); with --tls-key serves https/wss and TLS on TCP")
	fs.String("tls-key", d.TLSKey, "TLS private key file (PEM)")
	fs.Bool("client-broadcast", d.ClientBroadcast, "let clients broadcast to every connection")
	fs.Bool("pprof", d.Pprof, "serve Go's profiler at /debug/pprof/ on the HTTP listener (needs an API key unless --insecure)")
	fs.Bool("client-send", d.ClientSend, "let clients send direct messages to users")
	fs.Duration("inbox-ttl", d.InboxTTL, "how long a direct message waits in its recipient's inbox for every device to acknowledge it (0: direct messages are not stored)")
	fs.Int("inbox-max-messages", d.InboxMaxMessages, "messages one user's inbox keeps; the oldest go first")
	fs.Int64("inbox-max-bytes", d.InboxMaxBytes, "bytes of message data one user's inbox keeps; the oldest go first")
	fs.Int("max-recovery-bytes", d.MaxRecoveryBytes, "bytes of missed messages one subscribe may recover at once, beyond max-outbound-bytes; past it the client is told to reload (recovered: false)")
	fs.Duration("idempotency-window", d.IdempotencyWindow, "how long the server API remembers an Idempotency-Key")
	fs.String("receipts-webhook", d.ReceiptsWebhook, "URL (http or https) the server posts delivery receipts to, in signed batches (empty: none)")
	fs.String("receipts-webhook-secret", d.ReceiptsWebhookSecret, "secret (at least 32 bytes) the receipts webhook's posts are signed with (HMAC-SHA256, header Herald-Signature)")
	fs.String("events-webhook", d.EventsWebhook, "URL (http or https) the server posts presence events to (user.online, user.offline, and channel.join and channel.leave in namespaces with presence-events), in signed batches (empty: none)")
	fs.String("events-webhook-secret", d.EventsWebhookSecret, "secret (at least 32 bytes) the events webhook's posts are signed with (HMAC-SHA256, header Herald-Signature)")
	fs.Duration("offline-grace", d.OfflineGrace, "how long a user's last connection (or a channel's last subscription) must stay gone before user.offline (or channel.leave) is posted; coming back within it posts nothing")
	fs.String("connect-hook", d.ConnectHook, "URL (http or https) the server asks, on each connect without a token, who the client is (empty: none)")
	fs.String("subscribe-hook", d.SubscribeHook, "URL (http or https) the server asks on each subscribe in namespaces with subscribe-hook (empty: none)")
	fs.String("hook-secret", d.HookSecret, "secret (at least 32 bytes) the connect and subscribe hooks' requests are signed with (HMAC-SHA256, header Herald-Signature)")
	fs.Duration("hook-timeout", d.HookTimeout, "how long the server waits for the connect or subscribe hook's answer before the client gets hook_unavailable")
	fs.Int("hook-concurrency", d.HookConcurrency, "connect and subscribe hook calls in flight at once; past it clients get hook_unavailable at once")
	fs.StringSlice("hook-headers", d.HookHeaders, "HTTP headers of the client's WebSocket or SSE request passed to the connect hook, such as Cookie,Authorization (default: none)")
	fs.String("redis", d.Redis, "cluster mode: URL of the Redis every node shares: redis://[user:password@]host:port[/db], rediss:// for TLS; for Redis Cluster, more seed nodes as ?addr=host:port&addr=host:port. History, inboxes, receipts, idempotency keys and presence are kept there; --data-dir then holds only the token secret")
	fs.String("redis-tls-ca", d.RedisTLSCA, "cluster mode: PEM file of the certificate authorities that sign the certificate of a rediss:// Redis (default: the system's)")
	fs.String("redis-prefix", d.RedisPrefix, "cluster mode: starts every Redis key and pub/sub channel name; every node of one cluster uses the same prefix, and clusters with different prefixes share a Redis without seeing each other (no braces)")
	fs.Duration("node-timeout", d.NodeTimeout, "cluster mode: how long a node may go silent (killed, cut off) before its connections drop out of presence and stats; each node reports every third of it; use the same value on every node")
	fs.Duration("escalate-after", d.EscalateAfter, "how long a direct message may stay unacknowledged by every device of its recipient before message.unacknowledged is posted to the events webhook, for a mobile push (0: never)")
}

// Load reads the configuration: defaults, then the config file (from
// --config or HERALD_CONFIG), then the environment, then the flags set on
// the command line. environ is os.Environ in production.
//
// An unknown key in the file is an error; an unknown HERALD_* variable is
// not (Kubernetes sets HERALD_PORT, HERALD_SERVICE_HOST and more in every
// pod of a Service named herald): Load ignores it, and UnknownEnv names it
// for the caller to warn about. Every error names where the value at fault
// came from: the flag, the variable or the file.
func Load(fs *pflag.FlagSet, environ func() []string) (Config, error) {
	k := koanf.New(".")
	src := sources{}
	path, _ := fs.GetString("config")
	if path == "" {
		path = lookup(environ, EnvPrefix+"CONFIG")
	}
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Config{}, fmt.Errorf("read config file %s: %w", path, err)
		}
		for key := range k.Raw() {
			if key == "namespaces" {
				if err := checkNamespaceKeys(k.Get(key)); err != nil {
					return Config{}, fmt.Errorf("config file %s: %w", path, err)
				}
				src[key] = source{file: path}
				continue
			}
			if fs.Lookup(key) == nil || key == "config" {
				return Config{}, fmt.Errorf("config file %s: unknown key %q", path, key)
			}
			src[key] = source{file: path}
		}
	}
	err := k.Load(env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: environ,
		TransformFunc: func(name, value string) (string, any) {
			key, ok := envKey(fs, name)
			if !ok {
				return "", nil // the file's path, read above, or unknown
			}
			src[key] = source{env: name}
			if fs.Lookup(key).Value.Type() == "stringSlice" {
				// As on the command line: a comma-separated list.
				return key, strings.Split(value, ",")
			}
			return key, value
		},
	}), nil)
	if err != nil {
		return Config{}, fmt.Errorf("read environment: %w", err)
	}
	// Flags set on the command line override everything; unset flags only
	// supply defaults for keys nothing else set.
	if err := k.Load(posflag.Provider(fs, ".", k), nil); err != nil {
		return Config{}, fmt.Errorf("read flags: %w", err)
	}
	fs.Visit(func(f *pflag.Flag) { src[f.Name] = source{flag: f.Name} })
	var c Config
	if err := k.UnmarshalWithConf("", &c, unmarshalConf); err != nil {
		return Config{}, decodeErrors(k, fs, src, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, src.annotate(err)
	}
	return c, nil
}

// TrustedProxyPrefixes parses TrustedProxies: each entry is a CIDR range
// or a single address (a range of one). Empty entries are skipped.
func (c Config) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("trusted-proxies: %q is neither a CIDR range (10.0.0.0/8, fd00::/8) nor an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// Client addresses are compared unmapped: ::ffff:10.0.0.0/104
			// is 10.0.0.0/8.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// UnknownEnv returns the names of the HERALD_* variables in environ that
// name no setting, sorted. Load ignores them.
func UnknownEnv(fs *pflag.FlagSet, environ func() []string) []string {
	var unknown []string
	for _, kv := range environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || name == EnvPrefix+"CONFIG" {
			continue
		}
		if _, ok := envKey(fs, name); !ok {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	return slices.Compact(unknown)
}

// EnvVar returns the environment variable that sets key:
// max-frame-bytes is HERALD_MAX_FRAME_BYTES.
func EnvVar(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// envKey returns the setting a HERALD_* variable sets, and false for
// HERALD_CONFIG and for variables that name no setting.
func envKey(fs *pflag.FlagSet, name string) (string, bool) {
	key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "_", "-")
	if key == "config" || fs.Lookup(key) == nil {
		return "", false
	}
	return key, true
}

var unmarshalConf = koanf.UnmarshalConf{Tag: "koanf"}

// source is where a setting's value came from: one of a flag, an
// environment variable or a config file.
type source struct{ flag, env, file string }

func (s source) String() string {
	switch {
	case s.flag != "":
		return "--" + s.flag
	case s.env != "":
		return s.env
	default:
		return "config file " + s.file
	}
}

// sources maps each setting given anywhere but in the defaults to where it
// was given.
type sources map[string]source

// annotate adds to each of the errors Validate reported where the settings
// at fault were set, so that the operator knows what to change.
func (src sources) annotate(err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		var se *settingError
		if !errors.As(e, &se) {
			out = append(out, e)
			continue
		}
		var where []string
		for _, key := range se.keys {
			if s, ok := src[key]; ok && !slices.Contains(where, s.String()) {
				where = append(where, s.String())
			}
		}
		if len(where) == 0 {
			out = append(out, e)
			continue
		}
		out = append(out, fmt.Errorf("%w (set by %s)", e, strings.Join(where, " and ")))
	}
	return errors.Join(out...)
}

// decodeErrors explains a failed decode: each setting is decoded alone,
// so that every value that does not fit its setting is reported with the
// flag, variable or file that gave it, and the value itself.
func decodeErrors(k *koanf.Koanf, fs *pflag.FlagSet, src sources, whole error) error {
	var errs []error
	keys := k.Keys()
	slices.Sort(keys)
	for _, key := range keys {
		one := koanf.New(".")
		if one.Set(key, k.Get(key)) != nil {
			continue
		}
		var c Config
		if one.UnmarshalWithConf("", &c, unmarshalConf) == nil {
			continue
		}
		want := "of another type"
		if f := fs.Lookup(key); f != nil {
			want = typeName(f.Value.Type())
		} else if key == "namespaces" {
			want = "a list of {name, subscribe, publish, history-size, history-ttl, presence-events}"
		}
		s := src[key]
		switch {
		case s.env != "":
			errs = append(errs, fmt.Errorf("invalid value %q for %s: %s must be %s", fmt.Sprint(k.Get(key)), s.env, key, want))
		case s.file != "":
			errs = append(errs, fmt.Errorf("invalid value %q for %s in %s: must be %s", fmt.Sprint(k.Get(key)), key, s.file, want))
		default:
			errs = append(errs, fmt.Errorf("invalid value %q for %s: must be %s", fmt.Sprint(k.Get(key)), key, want))
		}
	}
	if len(errs) == 0 {
		// Only the combination failed: keep the decoder's lines that name
		// the setting.
		msg := strings.TrimSpace(strings.TrimPrefix(whole.Error(), "decoding failed due to the following error(s):"))
		return fmt.Errorf("invalid setting: %s", strings.Join(strings.Fields(msg), " "))
	}
	return errors.Join(errs...)
}

// typeName describes the values a flag of type t takes.
func typeName(t string) string {
	switch t {
	case "int":
		return "a whole number"
	case "float64":
		return "a number"
	case "duration":
		return "a duration such as 30s, 1m or 1h30m"
	case "bool":
		return "true or false"
	case "stringSlice":
		return "a list of strings"
	default:
		return "a " + t
	}
}

func lookup(environ func() []string, name string) string {
	for _, kv := range environ() {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	// keys are the settings at fault, comma-separated; the message names
	// them too.
	check := func(ok bool, keys, format string, args ...any) {
		if !ok {
			errs = append(errs, &settingError{keys: strings.Split(keys, ","), msg: fmt.Sprintf(format, args...)})
		}
	}
	check(c.HTTP != "", "http", "http: a listen address is required")
	// Clients are told both in whole seconds (ping_interval, pong_timeout)
	// and judge the connection dead by them, so they are whole seconds.
	check(c.PingInterval >= time.Second && c.PingInterval%time.Second == 0, "ping-interval", "ping-interval: must be whole seconds, at least 1s, got %s", c.PingInterval)
	check(c.PongTimeout >= time.Second && c.PongTimeout%time.Second == 0, "pong-timeout", "pong-timeout: must be whole seconds, at least 1s, got %s", c.PongTimeout)
	check(c.HandshakeTimeout > 0, "handshake-timeout", "handshake-timeout: must be positive")
	check(c.ShutdownTimeout > 0, "shutdown-timeout", "shutdown-timeout: must be positive")
	check(c.MaxFrameBytes >= 256, "max-frame-bytes", "max-frame-bytes: must be at least 256, got %d", c.MaxFrameBytes)
	check(c.MaxOutboundBytes >= c.MaxFrameBytes, "max-outbound-bytes,max-frame-bytes", "max-outbound-bytes: must be at least max-frame-bytes (%d), got %d", c.MaxFrameBytes, c.MaxOutboundBytes)
	check(c.OpsPerSecond > 0, "ops-per-second", "ops-per-second: must be positive")
	check(c.OpsBurst >= 1, "ops-burst", "ops-burst: must be at least 1")
	check(c.MaxSubscriptions >= 0, "max-subscriptions", "max-subscriptions: must not be negative")
	check(c.MaxConnsPerUser >= 0, "max-connections-per-user", "max-connections-per-user: must not be negative")
	check(c.MaxStrikes >= 0, "max-strikes", "max-strikes: must not be negative")
	check(c.Writers >= 0, "writers", "writers: must not be negative")
	check(c.PublishPerSecond > 0, "publish-per-second", "publish-per-second: must be positive")
	check(c.PublishBurst >= 1, "publish-burst", "publish-burst: must be at least 1")
	check(c.ConnectsPerIP >= 0, "connects-per-ip", "connects-per-ip: must not be negative")
	check(c.ConnectsBurst >= 1, "connects-burst", "connects-burst: must be at least 1")
	check(c.HTTPConnsPerIP >= 0, "http-connections-per-ip", "http-connections-per-ip: must not be negative")
	check(c.HTTPIdleTimeout >= time.Second, "http-idle-timeout", "http-idle-timeout: must be at least 1s")
	check(c.APIMaxBody >= 1024, "api-max-body-bytes", "api-max-body-bytes: must be at least 1024")
	check((c.TLSCert == "") == (c.TLSKey == ""), "tls-cert,tls-key", "tls-cert and tls-key: give both or neither")
	check(c.TokenSecret == "" || len(c.TokenSecret) >= 32, "token-secret", "token-secret: must be at least 32 bytes")
	check(c.TokenSecret == "" || c.TokenPublicKey == "", "token-secret,token-public-key", "token-secret and token-public-key: give one, not both")
	for i, k := range c.APIKeys {
		// Name the key by position: the error goes to logs, the key must not.
		n := utf8.RuneCountInString(k)
		check(n >= MinAPIKeyLen, "api-keys", "api-keys: key %d of %d is too short (%d characters); each key needs at least %d (make one with: openssl rand -hex 32)", i+1, len(c.APIKeys), n, MinAPIKeyLen)
	}
	if _, err := c.TrustedProxyPrefixes(); err != nil {
		errs = append(errs, &settingError{keys: []string{"trusted-proxies"}, msg: err.Error()})
	}
	seen := map[string]bool{}
	check(c.InboxTTL >= 0, "inbox-ttl", "inbox-ttl: must not be negative")
	check(c.InboxMaxMessages >= 1, "inbox-max-messages", "inbox-max-messages: must be at least 1")
	check(c.InboxMaxBytes >= int64(c.MaxFrameBytes), "inbox-max-bytes,max-frame-bytes", "inbox-max-bytes: must be at least max-frame-bytes (%d), got %d", c.MaxFrameBytes, c.InboxMaxBytes)
	check(c.MaxRecoveryBytes >= 0, "max-recovery-bytes", "max-recovery-bytes: must not be negative")
	check(c.IdempotencyWindow >= time.Second, "idempotency-window", "idempotency-window: must be at least 1s")
	// webhook checks the URL and secret of the webhook set by key.
	webhook := func(key, target, secret string) {
		if target == "" {
			return
		}
		u, err := url.Parse(target)
		check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "", key, "%s: want an http:// or https:// URL, got %q", key, target)
		check(len(secret) >= 32, key+"-secret,"+key, "%s-secret: the webhook's posts are signed with it: set at least 32 bytes (make one with: openssl rand -hex 32)", key)
	}
	webhook("receipts-webhook", c.ReceiptsWebhook, c.ReceiptsWebhookSecret)
	check(c.ReceiptsWebhook == "" || c.InboxTTL > 0, "receipts-webhook,inbox-ttl", "receipts-webhook: needs inboxes (inbox-ttl above 0): receipts are of stored direct messages")
	webhook("events-webhook", c.EventsWebhook, c.EventsWebhookSecret)
	check(c.OfflineGrace >= 0 && c.OfflineGrace <= MaxOfflineGrace, "offline-grace", "offline-grace: must be between 0 and %s, got %s", MaxOfflineGrace, c.OfflineGrace)
	if c.Redis != "" {
		opt, err := rueidis.ParseURL(c.Redis)
		check(err == nil, "redis", "redis: want redis://[user:password@]host:port[/db] or rediss://...: %v", err)
		check(err != nil || c.RedisTLSCA == "" || opt.TLSConfig != nil, "redis-tls-ca,redis", "redis-tls-ca: needs a rediss:// URL in redis, which connects with TLS")
	}
	check(c.RedisTLSCA == "" || c.Redis != "", "redis-tls-ca,redis", "redis-tls-ca: needs redis (cluster mode)")
	check(c.RedisPrefix != "" && !strings.ContainsAny(c.RedisPrefix, "{}"), "redis-prefix", "redis-prefix: must be set, without braces (they would change the hash slots of the keys)")
	check(c.NodeTimeout >= 3*time.Second, "node-timeout", "node-timeout: must be at least 3s (a node reports every third of it), got %s", c.NodeTimeout)
	check(c.EscalateAfter >= 0, "escalate-after", "escalate-after: must not be negative")
	if c.EscalateAfter > 0 {
		check(c.EventsWebhook != "", "escalate-after,events-webhook", "escalate-after: needs events-webhook, where message.unacknowledged is posted")
		check(c.EscalateAfter < c.InboxTTL, "escalate-after,inbox-ttl", "escalate-after: must be below inbox-ttl (%s): a message is escalated while its recipient's inbox keeps it", c.InboxTTL)
	}
	hook := func(key, target string) {
		if target == "" {
			return
		}
		u, err := url.Parse(target)
		check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "", key, "%s: want an http:// or https:// URL, got %q", key, target)
		check(err != nil || !pointsAt(u, c.HTTP), key+",http", "%s: %s is this server's own http address: the hook must be the application's backend", key, target)
		check(len(c.HookSecret) >= 32, "hook-secret,"+key, "hook-secret: the %s's requests are signed with it: set at least 32 bytes (make one with: openssl rand -hex 32)", key)
	}
	hook("connect-hook", c.ConnectHook)
	hook("subscribe-hook", c.SubscribeHook)
	check(c.HookTimeout > 0 && c.HookTimeout <= MaxHookTimeout, "hook-timeout", "hook-timeout: must be above 0 and at most %s, got %s", MaxHookTimeout, c.HookTimeout)
	check(c.ConnectHook == "" || c.HookTimeout < c.HandshakeTimeout, "hook-timeout,handshake-timeout", "hook-timeout: must be below handshake-timeout (%s): the connect hook is asked within the handshake", c.HandshakeTimeout)
	check(c.HookConcurrency >= 1, "hook-concurrency", "hook-concurrency: must be at least 1")
	for _, h := range c.HookHeaders {
		check(validHeaderName(h), "hook-headers", "hook-headers: %q is not an HTTP header name", h)
	}
	for _, ns := range c.Namespaces {
		check(!ns.SubscribeHook || c.SubscribeHook != "", "namespaces,subscribe-hook", "namespaces: %q: subscribe-hook needs the subscribe-hook URL", ns.Name)
		check(!seen[ns.Name], "namespaces", "namespaces: %q listed twice", ns.Name)
		check(!ns.PresenceEvents || c.EventsWebhook != "", "namespaces,events-webhook", "namespaces: %q: presence-events needs events-webhook, where the events go", ns.Name)
		check(ns.HistorySize >= 0 && ns.HistorySize <= MaxHistorySize, "namespaces", "namespaces: %q: history-size must be between 0 (no history) and %d, got %d", ns.Name, MaxHistorySize, ns.HistorySize)
		check(ns.HistoryTTL == 0 || ns.HistoryTTL >= time.Second && ns.HistoryTTL <= MaxHistoryTTL, "namespaces", "namespaces: %q: history-ttl must be between 1s and %s, got %s", ns.Name, MaxHistoryTTL, ns.HistoryTTL)
		check(ns.HistoryTTL == 0 || ns.HistorySize > 0, "namespaces", "namespaces: %q: history-ttl needs a history-size", ns.Name)
		seen[ns.Name] = true
		switch ns.Subscribe {
		case SubscribeAny, SubscribeGrant, SubscribeOwner:
		case "":
			check(false, "namespaces", "namespaces: %q: subscribe is required (any, grant or owner)", ns.Name)
		default:
			check(false, "namespaces", "namespaces: %q: subscribe must be any, grant or owner, got %q", ns.Name, ns.Subscribe)
		}
		switch ns.Publish {
		case PublishClients, PublishServer:
		case "":
			check(false, "namespaces", "namespaces: %q: publish is required (clients or server)", ns.Name)
		default:
			check(false, "namespaces", "namespaces: %q: publish must be clients or server, got %q", ns.Name, ns.Publish)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		check(false, "log-level", "log-level: want debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		check(false, "log-format", "log-format: want text or json, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}

// settingError is an invalid setting, as Validate reports it.
type settingError struct {
	keys []string // the settings at fault
	msg  string
}

func (e *settingError) Error() string { return e.msg }
