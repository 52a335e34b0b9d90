// Command ferry is the Ferry client: it prepares data, makes storage deals with
// providers, follows them and gets the data back.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/build"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

func main() {
	app := &cli.App{
		Name:    "ferry",
		Usage:   "make Filecoin storage deals and get the data back",
		Version: build.Version,
		Commands: []*cli.Command{
			// Each command group lives in its own file.
			initCmd,
			walletCmd,
			carCmd,
			commpCmd,
			marketCmd,
			devnetCmd,
			providerCmd,
			dealCmd,
			dealStatusCmd,
			retrieveCmd,
			allocateCmd,
			allocationsCmd,
		},
	}
	// Ctrl-C cancels the running command cleanly (servers stop, streams close).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.RunContext(ctx, cliutil.Interspersed(app, os.Args))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry:", err)
		os.Exit(1)
	}
}
