package main

import (
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/internal/cliutil"
)

var repoFlag = &cli.StringFlag{
	Name:    "repo",
	Usage:   "the provider's repo directory",
	EnvVars: []string{"FERRY_REPO"},
	Value:   "~/.ferry",
}

var jsonFlag = cliutil.JSONFlag()

// repoDir returns the --repo directory with ~ expanded.
func repoDir(cctx *cli.Context) string {
	dir := cctx.String("repo")
	if len(dir) > 0 && dir[0] == '~' {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, dir[1:])
		}
	}
	return dir
}
