// Package cliutil is what the two command lines, ferry and ferryd, share:
// how a line is read, how errors and results are printed, and progress on
// the terminal.
//
// # Reading a line
//
// Both tools build a urfave/cli v2 App, pass it to Setup with their common
// flags (--repo), and run it with Run (Main in the binaries). Then:
//
//   - Every command, groups included, takes the common flags.
//   - A flag may stand anywhere: before the command (`ferryd --repo R
//     info`), between its words (`ferry wallet --repo C list`) or after its
//     arguments (`ferry commp FILE --repo C --json`). Run moves each flag,
//     with its value, to the deepest command of the line that defines it,
//     and a flag no command of the line defines to the last command, which
//     reports it. Flag values are read as the flag's definition says (a
//     switch takes none; Lint checks that a name means the same everywhere).
//   - "--" ends the flags: what follows is positional, even "-x".
//   - --help or -h anywhere shows the help of the command the line names;
//     its arguments are then ignored.
//
// # Errors
//
// An error is one line (OneLine joins the lines of a multi-line error with
// "; "), printed on stderr after the program's name, with exit status 1;
// nothing else is printed. A word that names no subcommand of a command
// group, a missing required flag and a flag that does not parse are found
// before anything runs and name the help to read ("… (see ferry deal
// --help)"); urfave/cli's usage dump is not printed.
//
// # Results
//
// A command that has a result prints text for people, or with --json
// (JSONFlag) one indented JSON value (Print, WriteJSON); a command that
// follows something (`ferry deal-status --watch`) prints one value per
// change. Keys are camelCase, with initialisms as words (pieceCid,
// dealUuid, peerId). Where Boost's client has the same command (boost deal,
// deal-status, provider retrieval-transports, wallet …) ferry prints
// Boost's keys, with Boost's value types, so that scripts written for Boost
// read ferry's output. Otherwise amounts of FIL are attoFIL as decimal
// strings, sizes bytes and epochs numbers; where Boost prints a key another
// way, Boost's way wins (boost deal prints its epochs as strings, boost
// wallet balance "1.5 FIL").
package cliutil
