// Command ferryd is the Ferry storage provider daemon: it takes storage deals
// from clients and gets their data into sectors.
package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/build"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

func main() { cliutil.Main(newApp()) }

// newApp is ferryd's command line. Every command takes --repo; flags may
// be given anywhere on the line (cliutil.Run).
func newApp() *cli.App {
	app := &cli.App{
		Name:    "ferryd",
		Usage:   "the Ferry storage provider daemon",
		Version: build.Version,
		Commands: []*cli.Command{
			// Each command group lives in its own file.
			runCmd,
			infoCmd,
			dealCmd,
			publishCmd,
			importDataCmd,
			importDirectCmd,
			askCmd,
			sectorsCmd,
			indexCmd,
			dbCmd,
			clusterCmd,
			authCmd,
		},
	}
	cliutil.Setup(app, repoFlag)
	return app
}
