package cliutil

import (
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// commandLine is a command line taken apart: the command path, the flags
// each level of it receives, and the positional arguments of the last
// command.
type commandLine struct {
	app  *cli.App
	path []*cli.Command
	// flags[0] are the app's flags, flags[i] those of path[i-1]; each
	// entry is a flag token and, when it is separate, its value.
	flags [][]string
	// given are the names of the flags on the line, as written.
	given      map[string]bool
	positional []string
}

// parseLine takes args (args[0] is the program) apart. A flag, given
// anywhere, goes to the deepest command of the path that defines it, or to
// the last command when none does (which then reports it as unknown).
// Everything after "--" is positional.
func parseLine(app *cli.App, args []string) *commandLine {
	l := &commandLine{app: app, given: map[string]bool{}}
	takesValue := flagKinds(app)
	type flagTok struct {
		name  string
		words []string
	}
	var flags []flagTok
	var words, rest []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = args[i+1:]
			break
		}
		if !isFlag(a) {
			words = append(words, a)
			continue
		}
		name, inline := flagName(a)
		t := flagTok{name: name, words: []string{a}}
		if !inline && takesValue[name] && i+1 < len(args) {
			t.words = append(t.words, args[i+1])
			i++
		}
		flags = append(flags, t)
		l.given[name] = true
	}

	// The command path is the leading words that name commands.
	cmds := app.Commands
	for _, w := range words {
		c := findCommand(cmds, w)
		if c == nil {
			break
		}
		l.path = append(l.path, c)
		cmds = c.Subcommands
	}
	l.positional = append(append([]string(nil), words[len(l.path):]...), rest...)

	l.flags = make([][]string, len(l.path)+1)
	for _, f := range flags {
		level := len(l.path)
		for level > 0 && !commandDefines(l.path[level-1], f.name) {
			level--
		}
		if level == 0 && !definesFlag(app.Flags, f.name) {
			level = len(l.path)
		}
		l.flags[level] = append(l.flags[level], f.words...)
	}
	return l
}

// args writes the line back in the order urfave/cli v2 reads: every flag
// before the positional arguments of its command, and "--" before the
// positional arguments when one of them looks like a flag. With --help the
// positional arguments go (urfave/cli would look for help on a command
// named by the first).
func (l *commandLine) args(program string) []string {
	out := append([]string{program}, l.flags[0]...)
	for i, c := range l.path {
		out = append(out, c.Name)
		out = append(out, l.flags[i+1]...)
	}
	if l.given["help"] || l.given["h"] {
		return out
	}
	for _, p := range l.positional {
		if isFlag(p) {
			out = append(out, "--")
			break
		}
	}
	return append(out, l.positional...)
}

// name is the command's name as its help names it ("ferry car create").
func (l *commandLine) name() string {
	names := []string{l.app.Name}
	for _, c := range l.path {
		names = append(names, c.Name)
	}
	return strings.Join(names, " ")
}

// leaf is the last command of the path, nil for the app itself.
func (l *commandLine) leaf() *cli.Command {
	if len(l.path) == 0 {
		return nil
	}
	return l.path[len(l.path)-1]
}

// wantsHelp reports whether the line asks for help rather than to run.
func (l *commandLine) wantsHelp() bool {
	for _, c := range l.path {
		if c.HasName("help") {
			return true
		}
	}
	return l.given["help"] || l.given["h"]
}

// missingRequired returns the first required flag of the last command that
// is neither on the line nor in its environment variables.
func (l *commandLine) missingRequired() string {
	c := l.leaf()
	if c == nil || l.wantsHelp() {
		return ""
	}
	for _, f := range c.Flags {
		if rf, ok := f.(cli.RequiredFlag); !ok || !rf.IsRequired() {
			continue
		}
		set := false
		for _, n := range f.Names() {
			set = set || l.given[n]
		}
		if df, ok := f.(cli.DocGenerationFlag); ok {
			for _, e := range df.GetEnvVars() {
				_, inEnv := os.LookupEnv(e)
				set = set || inEnv
			}
		}
		if !set {
			return f.Names()[0]
		}
	}
	return ""
}

// unknownCommand returns the first positional argument of a command that
// only groups subcommands (the app included) when it names none of them.
// The help command urfave/cli adds to every command once it ran makes no
// command a group.
func (l *commandLine) unknownCommand() string {
	cmds := l.app.Commands
	if c := l.leaf(); c != nil {
		cmds = c.Subcommands
	}
	group := false
	for _, c := range cmds {
		group = group || c.Name != "help"
	}
	if !group || len(l.positional) == 0 || l.wantsHelp() {
		return ""
	}
	return l.positional[0]
}

// findCommand returns the command of cmds named w. "help" and "h" name
// urfave/cli's help command, which it adds to every command when it runs.
func findCommand(cmds []*cli.Command, w string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(w) {
			return c
		}
	}
	if w == "help" || w == "h" {
		return &cli.Command{Name: "help", Aliases: []string{"h"}}
	}
	return nil
}

// commandDefines reports whether c takes the flag called name; every
// command takes --help, which urfave/cli adds when it runs.
func commandDefines(c *cli.Command, name string) bool {
	if !c.HideHelp && (name == "help" || name == "h") {
		return true
	}
	return definesFlag(c.Flags, name)
}

func definesFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// flagKinds maps every flag name of the app and its commands to whether
// the flag takes a value. Lint checks that no name is a switch in one
// place and takes a value in another.
func flagKinds(app *cli.App) map[string]bool {
	kinds := map[string]bool{}
	add := func(flags []cli.Flag) {
		for _, f := range flags {
			for _, n := range f.Names() {
				kinds[n] = kinds[n] || takesValue(f)
			}
		}
	}
	add(app.Flags)
	walk(app.Commands, func(_ []string, c *cli.Command) { add(c.Flags) })
	return kinds
}

func takesValue(f cli.Flag) bool {
	v, ok := f.(interface{ TakesValue() bool })
	return ok && v.TakesValue()
}

// isFlag reports whether a word is a flag ("-" alone is the positional
// that means stdin).
func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

// flagName returns the name in "-o", "--json" or "--repo=dir", and whether
// the value is part of the word.
func flagName(a string) (name string, inline bool) {
	name = strings.TrimLeft(a, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		return name[:i], true
	}
	return name, false
}

// walk calls fn for every command under cmds, depth first, with the names
// of the commands above it. It skips urfave/cli's help command, which is
// its own subcommand once it ran.
func walk(cmds []*cli.Command, fn func(parents []string, c *cli.Command)) {
	var rec func(parents []string, cmds []*cli.Command)
	rec = func(parents []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Name == "help" {
				continue
			}
			fn(parents, c)
			rec(append(parents[:len(parents):len(parents)], c.Name), c.Subcommands)
		}
	}
	rec(nil, cmds)
}
