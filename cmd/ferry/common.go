package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// jsonFlag asks a command for JSON on stdout instead of text.
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print the result as JSON"}

// printResult prints v as JSON when --json was given, else calls human.
func printResult(c *cli.Context, v any, human func(w io.Writer)) error {
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("printing JSON: %w", err)
		}
		return nil
	}
	human(w)
	return nil
}
