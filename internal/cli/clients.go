package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/bench"
)

// defaultServer is the WebSocket endpoint of a server on its default
// address.
const defaultServer = "ws://127.0.0.1:7600/ws"

// defaultPushTimeout bounds pub, send and broadcast: connecting plus the
// reply.
const defaultPushTimeout = 10 * time.Second

// clientCommands returns sub, pub, send and broadcast.
func clientCommands(stdout io.Writer) []*cobra.Command {
	return []*cobra.Command{
		newSub(stdout),
		newPush(stdout, pushPublish),
		newPush(stdout, pushSend),
		newPush(stdout, pushBroadcast),
	}
}

// connFlags are the flags that say how to reach and authenticate with a
// server.
type connFlags struct {
	server, user, token, caFile string
}

func (f *connFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.server, "server", defaultServer, "server URL: ws://HOST:PORT/ws, wss://HOST:PORT/ws, tcp://HOST:PORT or tcps://HOST:PORT; a comma list names nodes of one cluster, tried in turn when one cannot be reached")
	fs.StringVar(&f.user, "user", "", "user id to connect as (accepted without a token only by a server in --insecure mode)")
	fs.StringVar(&f.token, "token", "", "connection token (see herald token)")
	fs.StringVar(&f.caFile, "ca", "", "PEM file of the certificate authorities to trust for wss:// and tcps:// (default: the system's)")
}

// dial connects with the flags' server and credentials.
func (f *connFlags) dial(ctx context.Context, opts ...client.Option) (*client.Client, error) {
	if f.user == "" && f.token == "" {
		return nil, errors.New("--user or --token is required")
	}
	opts = append(opts, client.WithUser(f.user), client.WithToken(f.token))
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate found", f.caFile)
		}
		opts = append(opts, client.WithTLSConfig(&tls.Config{RootCAs: pool}))
	}
	urls := bench.SplitList(f.server)
	if len(urls) == 0 {
		return nil, errors.New("--server is empty")
	}
	return client.Dial(ctx, urls[0], append(opts, client.WithFallbacks(urls[1:]...))...)
}

// subFlags are the flags of sub.
type subFlags struct {
	conn      connFlags
	channels  []string
	count     int
	device    string
	statePath string
}

func newSub(stdout io.Writer) *cobra.Command {
	var f subFlags
	cmd := &cobra.Command{
		Use:   "sub --user USER [--channel CHANNEL ...] [--device ID] [--state FILE] [--count N]",
		Short: "Print the messages a user receives, one JSON object a line",
		Long: `Connect, subscribe to the channels given, and print every message this
connection receives (channel messages, direct messages to the user and
broadcasts) as one JSON object a line, as the server sent it. A message
of a channel with history carries its "offset" and the channel's
"epoch"; a direct message carries its "seq" in the user's inbox.

Runs until interrupted, or until --count messages have been printed. It
reconnects and subscribes again by itself if the connection is lost, and
resumes each channel with history from the last message it printed, so
that nothing published meanwhile is missed while the server keeps it.
--server may list several nodes of a cluster, separated by commas: sub
connects to the first it can reach, and after losing a connection it
tries the next one in the list (from the last back to the first), with
the same positions and device.

--device ID names this device: the server keeps the user's direct
messages until the device acknowledges them, and sends what it has not
acknowledged, including what came while sub was not running, before
anything new. sub acknowledges each message after printing it.

--state FILE keeps the position of the last message printed in each
channel, and the device, in a small JSON file (written to a temporary
file and renamed over FILE, as sub goes and when it stops): run sub again
with the same FILE and it continues where it stopped. Status lines on
stderr say how many missed messages follow, and when what was missed is
no longer kept and cannot be recovered.

Example:
  herald sub --user alice --device laptop --state alice.json --channel chat:lobby`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.count < 0 {
				return errors.New("--count must not be negative")
			}
			return runSub(cmd.Context(), stdout, cmd.ErrOrStderr(), &f)
		},
	}
	f.conn.register(cmd.Flags())
	cmd.Flags().StringArrayVar(&f.channels, "channel", nil, "channel to subscribe to (repeatable)")
	cmd.Flags().IntVar(&f.count, "count", 0, "exit after this many messages (0: run until interrupted)")
	cmd.Flags().StringVar(&f.device, "device", "", "device id: receive and acknowledge the user's inbox of direct messages (default: the one in --state, if any)")
	cmd.Flags().StringVar(&f.statePath, "state", "", "JSON file that keeps channel positions and the device between runs")
	return cmd
}

func runSub(ctx context.Context, stdout, stderr io.Writer, f *subFlags) error {
	// Messages go to stdout; what happens to the connection goes to
	// stderr, so that a person watching knows it is alive and a pipe
	// reading stdout sees only messages.
	status := func(format string, args ...any) { fmt.Fprintf(stderr, "herald sub: "+format+"\n", args...) }
	var state *stateFile
	if f.statePath != "" {
		var err error
		if state, err = openState(f.statePath); err != nil {
			return err
		}
		switch was := state.device(); {
		case f.device == "":
			f.device = was
		case was != "" && was != f.device:
			// The server cannot tell a device given up from one away: it
			// goes on keeping the old one's messages.
			status("warning: %s was written for device %s; it is now %s's. The server keeps holding %s's inbox until it forgets %s (after --inbox-ttl, 7 days by default, without a connection)",
				f.statePath, was, f.device, was, was)
		}
		state.setDevice(f.device)
	}
	p := &linePrinter{w: stdout, limit: f.count, done: make(chan struct{})}
	// Inbox messages are acknowledged once printed (and only then: not
	// those after --count). The first may be printed before Dial returns
	// the client; the highest such sequence is acknowledged after.
	var (
		cl      atomic.Pointer[client.Client]
		printed atomic.Uint64
	)
	onMessage := func(m client.Message) {
		if !p.print(m) {
			return
		}
		if state != nil && m.Kind == client.KindChannel && m.Epoch != "" {
			state.setPosition(m.Channel, m.Position())
		}
		if m.Seq > 0 && f.device != "" {
			printed.Store(m.Seq)
			if c := cl.Load(); c != nil {
				c.Ack(m.Seq)
			}
		}
	}
	onSubscribed := func(s client.Subscription) {
		switch {
		case s.Lost():
			status("%s: what was missed is no longer kept (or the channel's history was reset) and cannot be recovered; continuing from offset %d", s.Channel, s.Offset)
		case s.Resumed && s.Missed > 0:
			status("%s: %d missed messages follow", s.Channel, s.Missed)
		}
		if state != nil && s.Epoch != "" && !s.Recovered {
			state.setPosition(s.Channel, s.Position())
		}
	}
	opts := []client.Option{
		client.WithMessageHandler(onMessage),
		client.WithSubscribedHandler(onSubscribed),
		client.WithStateHandler(func(sc client.StateChange) {
			switch sc.State {
			case client.StateConnected:
				status("connected to %s as %s%s", sc.URL, sc.Info.User, describeInbox(sc.Info))
			case client.StateDisconnected:
				status("connection lost (%v); reconnecting in %s", sc.Err, sc.Delay.Round(time.Millisecond))
			}
		}),
		client.WithUnsubscribedHandler(func(ch string) {
			status("the server unsubscribed this connection from %s", ch)
		}),
	}
	if f.device != "" {
		opts = append(opts, client.WithDevice(f.device), client.WithManualAck())
	}
	c, err := f.conn.dial(ctx, opts...)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while connecting
		}
		return err
	}
	cl.Store(c)
	if seq := printed.Load(); seq > 0 {
		c.Ack(seq)
	}
	stopSaving := saveStateEvery(state, stateSaveInterval, status)
	err = followSub(ctx, c, p, state, f.channels, status)
	// Close waits for the message handler and sends the last
	// acknowledgement; the state is saved after, with what was printed.
	_ = c.Close()
	stopSaving()
	if state != nil {
		if serr := state.save(); err == nil {
			err = serr
		}
	}
	return err
}

// followSub subscribes c to channels, from the positions in state, and
// waits until the printer is done, ctx ends or the client stops.
func followSub(ctx context.Context, c *client.Client, p *linePrinter, state *stateFile, channels []string, status func(string, ...any)) error {
	for _, ch := range channels {
		var opts []client.SubscribeOption
		if state != nil {
			opts = append(opts, client.Since(state.position(ch)))
		}
		if err := c.Subscribe(ctx, ch, opts...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		status("subscribed to %s", ch)
	}
	select {
	case <-p.done:
		return p.err()
	case <-ctx.Done():
		return nil // interrupted: the normal way to stop
	case <-c.Done():
		return c.Err()
	}
}

// describeInbox says where a connection's device stands in its inbox, for
// a status line.
func describeInbox(info client.ConnectInfo) string {
	if info.Inbox == nil {
		return ""
	}
	s := fmt.Sprintf(", device %s: %d inbox %s pending", info.Device, info.Inbox.Pending, plural(info.Inbox.Pending, "message"))
	if info.Inbox.Missed > 0 {
		s += fmt.Sprintf(", %d missed (dropped, expired or over the inbox's cap, before acknowledged)", info.Inbox.Missed)
	}
	return s
}

// plural returns noun for n == 1, and its plural otherwise.
func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// saveStateEvery saves state (if not nil) every interval until the
// returned function is called.
func saveStateEvery(state *stateFile, interval time.Duration, status func(string, ...any)) (stop func()) {
	if state == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := state.save(); err != nil {
					status("%v", err)
				}
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// linePrinter writes messages as JSON lines, and closes done after limit
// messages (0: never) or on a write error.
type linePrinter struct {
	w     io.Writer
	limit int
	done  chan struct{}

	mu      sync.Mutex
	n       int
	werr    error
	buf     bytes.Buffer
	stopped bool
}

// print writes m and reports whether it did.
func (p *linePrinter) print(m client.Message) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.buf.Reset()
	// The server's frame, on one line whatever its layout.
	if err := json.Compact(&p.buf, m.Raw); err != nil {
		p.stop(fmt.Errorf("message %s: %w", m.ID, err))
		return false
	}
	p.buf.WriteByte('\n')
	if _, err := p.w.Write(p.buf.Bytes()); err != nil {
		p.stop(fmt.Errorf("write message: %w", err))
		return false
	}
	p.n++
	if p.limit > 0 && p.n >= p.limit {
		p.stop(nil)
	}
	return true
}

// stop ends the printing with err; p.mu is held.
func (p *linePrinter) stop(err error) {
	p.stopped, p.werr = true, err
	close(p.done)
}

func (p *linePrinter) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.werr
}

// push describes one of pub, send and broadcast.
type push struct {
	use, short, long string
	// target is the flag naming the addressee ("" for none).
	target, targetUsage string
	do                  func(ctx context.Context, c *client.Client, target string, data json.RawMessage) (string, error)
}

var (
	pushPublish = push{
		use:         "pub --user USER --channel CHANNEL DATA",
		short:       "Publish a message to a channel",
		long:        "Publish DATA to every connection subscribed to the channel, and print the message id.",
		target:      "channel",
		targetUsage: "channel to publish to",
		do: func(ctx context.Context, c *client.Client, channel string, data json.RawMessage) (string, error) {
			return c.Publish(ctx, channel, data)
		},
	}
	pushSend = push{
		use:         "send --user USER --to USER2 DATA",
		short:       "Send a direct message to a user",
		long:        "Send DATA to every connection of a user, and print the message id.",
		target:      "to",
		targetUsage: "user id of the recipient",
		do: func(ctx context.Context, c *client.Client, to string, data json.RawMessage) (string, error) {
			return c.Send(ctx, to, data)
		},
	}
	pushBroadcast = push{
		use:   "broadcast --user USER DATA",
		short: "Broadcast a message to every connected client",
		long: "Send DATA to every connected client, and print the message id. Servers refuse\n" +
			"client broadcasts unless started with --client-broadcast.",
		do: func(ctx context.Context, c *client.Client, _ string, data json.RawMessage) (string, error) {
			return c.Broadcast(ctx, data)
		},
	}
)

const dataHelp = `

DATA is a JSON value ({"text":"hi"}, 42, "quoted"); quote it for the shell:
'{"text":"hi"}'. Text that does not look like JSON is sent as a JSON
string, so 'hello' sends "hello"; several arguments are joined with spaces
first. DATA that looks like JSON but is not valid JSON (it starts with {, [
or ", or is a word like 1.5.2, True or nul) is refused rather than sent as
a string, since a typo would otherwise reach subscribers as text. --raw
sends DATA as a JSON string whatever it looks like.`

func newPush(stdout io.Writer, p push) *cobra.Command {
	var (
		conn    connFlags
		target  string
		timeout time.Duration
		raw     bool
	)
	cmd := &cobra.Command{
		Use:   p.use,
		Short: p.short,
		Long:  p.long + dataHelp,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := parseData(strings.Join(args, " "), raw)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			c, err := conn.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			id, err := p.do(ctx, c, target, data)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, id)
			return err
		},
	}
	conn.register(cmd.Flags())
	if p.target != "" {
		cmd.Flags().StringVar(&target, p.target, "", p.targetUsage)
		_ = cmd.MarkFlagRequired(p.target)
	}
	cmd.Flags().DurationVar(&timeout, "timeout", defaultPushTimeout, "give up after this long (0: never)")
	cmd.Flags().BoolVar(&raw, "raw", false, "send DATA as a JSON string, even if it looks like JSON")
	return cmd
}

// parseData takes arg as JSON if it is valid JSON, and as a string if it
// does not look like JSON; arg that looks like JSON but does not parse is
// refused. raw takes arg as a string whatever it is.
func parseData(arg string, raw bool) (json.RawMessage, error) {
	if !raw && json.Valid([]byte(arg)) {
		return json.RawMessage(arg), nil
	}
	if !raw && looksLikeJSON(arg) {
		var v any
		err := json.Unmarshal([]byte(arg), &v)
		return nil, fmt.Errorf("DATA %q looks like JSON but is not valid JSON (%v): correct it (quote it for the shell: '{\"text\":\"hi\"}'), or pass --raw to send it as a string", arg, err)
	}
	s, _ := json.Marshal(arg) // a string always encodes
	return s, nil
}

// looksLikeJSON reports whether s, not valid JSON, was probably meant to
// be: it starts like an object, an array or a string, or is one word that
// reads as a number (1.5.2, 0x1F, -3e) or as true, false or null written
// wrong (True, NULL, nul).
func looksLikeJSON(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	switch s[0] {
	case '{', '[', '"':
		return true
	}
	if strings.ContainsAny(s, " \t\n\r") {
		return false // text of several words
	}
	if c := strings.TrimLeft(s, "+-"); c != "" && (c[0] == '.' || c[0] >= '0' && c[0] <= '9') {
		return true
	}
	w := strings.ToLower(s)
	for _, lit := range []string{"true", "false", "null"} {
		if len(w) >= 3 && strings.HasPrefix(lit, w) {
			return true
		}
	}
	return false
}
