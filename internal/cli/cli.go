// Package cli implements the herald command and its subcommands. It writes
// only to the streams it is given, so every command runs in tests as it runs
// in a terminal.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
)

// Version is set at build time with -ldflags "-X .../cli.Version=...".
var Version = "dev"

// Run executes the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "herald:", err)
		return 1
	}
	return 0
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "herald",
		Short:         "Herald: a real-time message push server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newServe(stderr),
		newToken(stdout),
		newBench(stdout, stderr),
		newVersion(stdout),
	)
	for _, c := range clientCommands(stdout) {
		root.AddCommand(c)
	}
	return root
}

func newVersion(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(stdout, "herald", Version)
			return err
		},
	}
}

func newServe(stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Long: `Run the Herald server.

Settings come from, highest precedence first: command-line flags, HERALD_*
environment variables (--max-frame-bytes is HERALD_MAX_FRAME_BYTES), the YAML
file named by --config or HERALD_CONFIG (keys are the flag names), and the
built-in defaults shown below.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Flags(), os.Environ)
			if err != nil {
				return err
			}
			log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
			tuneProcess(log)
			if unknown := config.UnknownEnv(cmd.Flags(), os.Environ); len(unknown) > 0 {
				log.Warn("ignoring environment variables that name no setting (see herald serve --help)", "vars", strings.Join(unknown, ","))
			}
			srv, err := server.New(cfg, log)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	config.RegisterFlags(cmd.Flags())
	return cmd
}

// newLogger logs at level and above, as JSON objects or as text lines;
// config.Validate has checked both.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
