package cli

import (
	"io"

	"github.com/spf13/cobra"
)

// clientCommands returns sub, pub, send and broadcast.
func clientCommands(stdout io.Writer) []*cobra.Command { return nil }
