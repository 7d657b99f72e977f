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
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
)

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
		Short: "Print the version, the source revision and the Go version",
		Long: `Print the version of the module this binary was built from, the version
control revision it was built at, and the Go toolchain and platform, as
the Go toolchain recorded them in the binary. A binary built from a
checkout has the version (devel); one built without version control
information (go build -buildvcs=false, or outside a repository) has no
revision, and says so.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			bi, _ := debug.ReadBuildInfo()
			_, err := io.WriteString(stdout, formatVersion(bi))
			return err
		},
	}
}

// formatVersion describes the build bi records, one fact a line: the
// module version, the revision (with its time, and whether the tree had
// uncommitted changes), the Go version and platform. What bi does not
// record is said to be unknown; bi may be nil.
func formatVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return "herald (version unknown: the binary records no build information)\n"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(version unknown)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "herald %s\n", version)
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if rev := set["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, "revision %s", rev)
		if t := set["vcs.time"]; t != "" {
			fmt.Fprintf(&b, " of %s", t)
		}
		if set["vcs.modified"] == "true" {
			b.WriteString(", with uncommitted changes")
		}
		b.WriteString("\n")
	} else {
		b.WriteString("revision unknown (built without version control information)\n")
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = "go (version unknown)"
	}
	b.WriteString(goVersion)
	if set["GOOS"] != "" && set["GOARCH"] != "" {
		fmt.Fprintf(&b, " %s/%s", set["GOOS"], set["GOARCH"])
	}
	b.WriteString("\n")
	return b.String()
}

func newServe(stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Long: `Run the Herald server.

Settings come from, highest precedence first: command-line flags, HERALD_*
environment variables (--max-frame-bytes is HERALD_MAX_FRAME_BYTES), the YAML
file named by --config or HERALD_CONFIG (keys are the flag names), and the
built-in defaults shown below. An invalid value is refused, naming the
flag, variable or file that gave it; so is an unknown key in the file. A
HERALD_* variable that names no setting (Kubernetes sets HERALD_PORT and
others for a Service named herald) is ignored with a warning naming it.`,
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
