package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/heraldpush/herald/internal/bench"
)

// newBench returns `herald bench SCENARIO`, the load generator.
func newBench(stdout, stderr io.Writer) *cobra.Command {
	o := bench.DefaultOptions()
	var (
		asJSON   bool
		htmlPath string
		quiet    bool
	)
	cmd := &cobra.Command{
		Use:   "bench {idle|fanout|direct|churn|abuse|recover|inbox|offline}",
		Short: "Load-test a running server and report its performance",
		Long: `Load-test a running Herald server with real client connections and report
handshakes, deliveries (expected against received: they must match, or the
command exits 1), deliveries per second, latency percentiles from a send
stamp in each payload, and, with --server-pid, the server's CPU time and
memory from /proc.

Scenarios:
  idle    connect --clients clients, each subscribed to user:<user>, and hold
          them for --hold
  fanout  --clients subscribers on one channel; --messages messages of --size
          bytes published by one client (--via client) or POST /v1/publish
          (--via api), as fast as possible or at --rate per second
  direct  --clients users online; --messages messages to each through
          POST /v1/send, --batch recipients per call (1: one call a message)
  churn   --cycles connect/subscribe/disconnect cycles, --concurrency at a
          time, while a publisher publishes at --rate (default 10/s)
  abuse   hostile and careless clients against the HTTP listener (--api),
          one after the other, each bounded: unauthenticated and oversized
          uploads, endless headers, WebSocket frames with a 64-bit length,
          a ping flood, 1,000 idle connections, 1,500 Connection: close
          requests; reports what the server did and its memory around each
  recover --clients subscribers of --channel (a channel with history) note
          their position and leave; --messages messages are published
          (--via); they subscribe again from their position and must each
          recover all of them; reports the publish rate of the fill and
          the time from each subscribe to its last message
  inbox   --messages direct messages to each of --clients offline users
          (--batch recipients per call); the server's memory before and
          after (after a GC with the server's --pprof, and --settle);
          then --online of the users connect with a device, must each get
          their pending messages, and acknowledge them
  offline --clients users connect and, once --hook-receiver has every
          user.online, all disconnect at once; reports when the
          user.offline events arrived (start the server with
          --events-webhook at the receiver)

A cluster (several nodes sharing a Redis): --server and --api take comma
lists of the nodes' endpoints; client n connects to endpoint n mod the
endpoints, and API calls go to the URLs in turn. --publish-on N pins the
publisher to the N-th endpoint: a client publisher connects to the N-th of
--server, which then holds no clients under test (unless it is the only
one); publish and send calls go to the N-th of --api. --server-pid takes
a comma list too (the nodes, the redis-server): CPU time and memory are
summed over them, and reported for each. The report counts the
handshakes on each endpoint. abuse attacks the first of --api.

A slow backend for the server's hooks (any scenario): --hook-receiver ADDR
serves an events webhook backend on ADDR for the run, answering each post
after --hook-delay; start the server with --events-webhook http://ADDR/
and the report counts the posts and events it got.

Compare in one run (fanout, direct): --baseline-server, --baseline-api,
--baseline-pid and --baseline-channel name a baseline (another server,
say one started with --inbox-ttl 0, or on the same server a channel
without history); the same load runs against both in --rounds
alternating rounds (ABBA), and the report gives both and their ratio.

The server's default limits are for production, not for load: start the
server under test with them lifted, for example

  herald serve --insecure --ops-per-second 1000000 --ops-burst 1000000 \
    --publish-per-second 1000000 --publish-burst 1000000 --connects-per-ip 0

Against a secure server (no --insecure), pass --hmac-secret with the
server's --token-secret (or the contents of its herald-data/token-secret)
to connect with signed tokens, and --api-key for the scenarios that use
the server API (direct, fanout --via api, churn statistics).
Every connection is a file descriptor in this process and in the server:
check ulimit -n on both sides. Above 10,000 connections over a run (churn
cycles count) the source address is spread over 127.0.0.x so that no
address runs out of ports; --source-ips sets the addresses. Targets outside
loopback are refused without --allow-remote.

--json prints one result object (the same figures, with units in the field
names); --html writes a self-contained report with a latency histogram.
Memory per connection is meaningful on a freshly started server only.`,
		Example: `  herald bench idle --clients 2000 --server-pid $(pgrep -n herald)
  herald bench fanout --clients 1000 --messages 100 --html fanout.html
  herald bench fanout --server tcp://127.0.0.1:7601 --via api --rate 500
  herald bench fanout --clients 100 --stalled 3000 --messages 100 --rate 10 --size 60000
  herald bench direct --clients 5000 --messages 10 --batch 1000 --json
  herald bench churn --cycles 20000 --concurrency 200
  herald bench direct --clients 5000 --messages 8 --api-concurrency 16 \
    --baseline-server ws://127.0.0.1:7700/ws --baseline-api http://127.0.0.1:7700
  herald bench fanout --clients 3000 --server-pid $N1,$N2,$N3,$(pgrep -n redis-server) \
    --server ws://127.0.0.1:7600/ws,ws://127.0.0.1:7700/ws,ws://127.0.0.1:7800/ws --publish-on 3
  herald bench recover --clients 1 --messages 10000 --channel hist:bench
  herald bench inbox --clients 10000 --messages 10 --batch 1000
  herald bench offline --clients 10000 --hook-receiver 127.0.0.1:7700 --hook-delay 100ms`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: benchScenarioNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Scenario = bench.Scenario(args[0])
			var progress io.Writer
			if !quiet && benchIsTerminal(stderr) {
				progress = stderr
			}
			res, err := bench.Run(cmd.Context(), o, progress)
			if err != nil {
				return err
			}
			if asJSON {
				err = bench.WriteJSON(stdout, res)
			} else {
				err = bench.WriteText(stdout, res)
			}
			if err != nil {
				return err
			}
			if htmlPath != "" {
				if err := writeBenchHTML(htmlPath, res); err != nil {
					return err
				}
			}
			return res.Check()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Server, "server", o.Server, "client endpoint: ws://host:port/ws, wss://..., or tcp://host:port for raw TCP; a comma list spreads the clients round-robin")
	f.StringVar(&o.API, "api", o.API, "server API base URL (direct, fanout --via api, churn stats); a comma list takes the calls round-robin")
	f.IntVar(&o.PublishOn, "publish-on", o.PublishOn, "pin the publisher to the N-th --server endpoint (client publisher) or --api URL (API calls), from 1; no client connects to the N-th --server endpoint")
	f.StringVar(&o.APIKey, "api-key", o.APIKey, "server API key, sent as Authorization: Bearer KEY")
	f.BoolVar(&o.AllowRemote, "allow-remote", o.AllowRemote, "allow a server outside the loopback range")
	f.IntVar(&o.Clients, "clients", o.Clients, "connections (subscribers, users) to open")
	f.Float64Var(&o.ConnectRate, "connect-rate", o.ConnectRate, "new connections per second (0: as fast as --concurrency allows)")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "dials (and churn cycles) in flight")
	f.DurationVar(&o.ConnectTimeout, "connect-timeout", o.ConnectTimeout, "bound on one dial plus handshake")
	f.BoolVar(&o.InsecureUsers, "insecure-users", o.InsecureUsers, `connect with {"op":"connect","user":"b<n>"} (server in --insecure mode)`)
	f.StringVar(&o.HMACSecret, "hmac-secret", o.HMACSecret, "connect with HS256 tokens signed with this secret (the server's --token-secret)")
	f.StringVar(&o.UserPrefix, "user-prefix", o.UserPrefix, "generated user ids are <prefix><n>")
	f.StringVar(&o.Channel, "channel", o.Channel, "fan-out and churn channel")
	f.StringVar(&o.SourceIPs, "source-ips", o.SourceIPs, "local addresses to spread connections over: 127.0.0.1-127.0.0.9 or a list (default: automatic)")
	f.IntSliceVar(&o.ServerPIDs, "server-pid", o.ServerPIDs, "server process id on this machine, or a comma list (nodes, redis-server): report their CPU time and memory, summed and each")
	f.DurationVar(&o.Hold, "hold", o.Hold, "idle: how long to hold the connections")
	f.IntVar(&o.Messages, "messages", o.Messages, "fanout, recover: messages to publish; direct, inbox: messages to each user")
	f.IntVar(&o.Size, "size", o.Size, "payload size in bytes")
	f.Float64Var(&o.Rate, "rate", o.Rate, "messages per second (fanout, churn) or API calls per second (direct); 0: as fast as possible")
	f.StringVar(&o.Via, "via", o.Via, "fanout publisher: client (publish op) or api (POST /v1/publish)")
	f.IntVar(&o.Publishers, "publishers", o.Publishers, "fanout, recover, churn with --via client: publishers at once, each on its own connection")
	f.IntVar(&o.PublishBatch, "publish-batch", o.PublishBatch, "fanout --via api: messages per POST /v1/publish call (1-10000; above 1 the batch form)")
	f.IntVar(&o.Batch, "batch", o.Batch, "direct: recipients per POST /v1/send call (1-10000)")
	f.IntVar(&o.APIConcurrency, "api-concurrency", o.APIConcurrency, "server API calls in flight")
	f.IntVar(&o.Window, "window", o.Window, "publishes in flight awaiting their reply on the publisher connection")
	f.IntVar(&o.Cycles, "cycles", o.Cycles, "churn: connect/subscribe/disconnect cycles")
	f.IntVar(&o.Stalled, "stalled", o.Stalled, "fanout: also subscribe this many connections that never read")
	f.IntVar(&o.Rounds, "rounds", o.Rounds, "fanout, direct: measured rounds the messages are split into (0: 1, or 4 with a baseline)")
	f.StringVar(&o.BaselineServer, "baseline-server", o.BaselineServer, "fanout, direct: the baseline's client endpoint (default: --server)")
	f.StringVar(&o.BaselineAPI, "baseline-api", o.BaselineAPI, "fanout, direct: the baseline's server API base URL (default: --api)")
	f.IntSliceVar(&o.BaselinePIDs, "baseline-pid", o.BaselinePIDs, "fanout, direct: the baseline server's process ids (default: --server-pid)")
	f.StringVar(&o.BaselineChannel, "baseline-channel", o.BaselineChannel, "fanout: the baseline's channel (default: --channel)")
	f.IntVar(&o.Online, "online", o.Online, "inbox: users that come online after the fill (-1: all)")
	f.DurationVar(&o.Settle, "settle", o.Settle, "inbox: wait this long for the server's memory to settle before reading it")
	f.StringVar(&o.HookReceiver, "hook-receiver", o.HookReceiver, "serve an events webhook backend on this host:port for the run (the server's --events-webhook)")
	f.DurationVar(&o.HookDelay, "hook-delay", o.HookDelay, "hook-receiver: answer each post after this long")
	f.DurationVar(&o.Drain, "drain", o.Drain, "give up on outstanding deliveries (or hook events) after this long without one")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole run")
	f.BoolVar(&asJSON, "json", false, "print one JSON result object instead of the text report")
	f.StringVar(&htmlPath, "html", "", "also write a self-contained HTML report with a latency chart to this file")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func benchScenarioNames() []string {
	names := make([]string, len(bench.Scenarios))
	for i, s := range bench.Scenarios {
		names[i] = string(s)
	}
	return names
}

// benchIsTerminal reports whether w is a terminal: progress bars only go there.
func benchIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// writeBenchHTML writes the HTML report to path.
func writeBenchHTML(path string, res bench.Result) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("html report: %w", cerr)
		}
	}()
	return bench.WriteHTML(f, res)
}
