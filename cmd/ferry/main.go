// Command ferry is the Ferry client: it prepares data, makes storage deals with
// providers, follows them and gets the data back.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/build"
)

func main() {
	app := &cli.App{
		Name:    "ferry",
		Usage:   "make Filecoin storage deals and get the data back",
		Version: build.Version,
		Commands: []*cli.Command{
			// Each command group lives in its own file.
			carCmd,
			commpCmd,
		},
	}
	if err := app.Run(interspersed(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "ferry:", err)
		os.Exit(1)
	}
}
