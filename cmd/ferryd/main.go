// Command ferryd is the Ferry storage provider daemon: it takes storage deals
// from clients and gets their data into sectors.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/build"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

func main() {
	app := &cli.App{
		Name:    "ferryd",
		Usage:   "the Ferry storage provider daemon",
		Version: build.Version,
		Flags:   []cli.Flag{repoFlag},
		Commands: []*cli.Command{
			// Each command group lives in its own file.
			runCmd,
			infoCmd,
			dealCmd,
			publishCmd,
			importDataCmd,
			askCmd,
			sectorsCmd,
			indexCmd,
			authCmd,
		},
	}
	if err := app.Run(cliutil.Interspersed(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "ferryd:", err)
		os.Exit(1)
	}
}
