// Command ferry is the Ferry client: it prepares data, makes storage deals with
// providers, follows them and gets the data back.
package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/build"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

func main() { cliutil.Main(newApp()) }

// newApp is ferry's command line. Every command takes --repo; flags may be
// given anywhere on the line (cliutil.Run).
func newApp() *cli.App {
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
	cliutil.Setup(app, repoFlag)
	return app
}
