// Command herald is the Herald push server and its command-line clients.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldpush/herald/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
