package main

import "github.com/ferry-fil/ferry/internal/cliutil"

// jsonFlag asks a command for JSON on stdout instead of text.
var jsonFlag = cliutil.JSONFlag()
