package cliutil

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// JSONFlag is the --json flag every command that prints a result takes.
func JSONFlag() *cli.BoolFlag {
	return &cli.BoolFlag{Name: "json", Usage: "print the result as JSON (camelCase keys) for scripts"}
}

// Print writes a command's result to the app's writer: v as indented JSON
// when the command line has --json, otherwise what human writes.
func Print(c *cli.Context, v any, human func(w io.Writer)) error {
	if c.Bool("json") {
		return WriteJSON(c.App.Writer, v)
	}
	human(c.App.Writer)
	return nil
}

// WriteJSON writes v to w as indented JSON and a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("printing JSON: %w", err)
	}
	return nil
}
