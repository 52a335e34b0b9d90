// Command ferry-bench compares Ferry's speed with the references named in the
// issues, side by side in one run, and prints both figures and their ratio.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{
		Name:  "ferry-bench",
		Usage: "measure Ferry against its references on this machine",
		Commands: []*cli.Command{
			// One subcommand per measured target, each in its own file.
			transferCommand(),
			commpCommand(),
			indexCommand(),
			acceptCommand(),
			retrievalCommand(),
			devnetCommand(),
			addPieceCommand(),
			storeCommand(),
			ingestCommand(),
			handoffCommand(),
			uiCommand(),
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "ferry-bench:", err)
		os.Exit(1)
	}
}
