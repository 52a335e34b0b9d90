package cliutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Setup prepares app for Run: every command (groups included) gets the
// common flags it does not define itself, and a flag that does not parse
// becomes a one-line error naming the command's help instead of a usage
// dump. Setup changes the commands in place and may run again on the same
// commands (tests build an App per run from the same commands).
func Setup(app *cli.App, common ...cli.Flag) {
	app.OnUsageError = usageError(app.Name)
	// Errors come back from Run; only Main exits.
	app.ExitErrHandler = func(*cli.Context, error) {}
	walk(app.Commands, func(parents []string, c *cli.Command) {
		for _, f := range common {
			if !definesFlag(c.Flags, f.Names()[0]) {
				c.Flags = append(c.Flags, f)
			}
		}
		c.OnUsageError = usageError(strings.Join(append(append([]string{app.Name}, parents...), c.Name), " "))
		// urfave/cli prefixes a HelpName it finds set with the app's name
		// again; unset, it writes the right one.
		c.HelpName = ""
	})
}

func usageError(name string) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		return fmt.Errorf("%w (see %s --help)", err, name)
	}
}

// Run runs app (set up with Setup) on args with flags in any position:
// before the command, between its words or after its arguments (see the
// package documentation). Unknown commands and missing required flags are
// one-line errors found before anything runs.
func Run(ctx context.Context, app *cli.App, args []string) error {
	if len(args) == 0 {
		args = []string{app.Name}
	}
	app.Setup() // adds --help and --version, which may be moved too
	l := parseLine(app, args)
	if w := l.unknownCommand(); w != "" {
		return fmt.Errorf("%q is not a command of %s (see %s --help)", w, l.name(), l.name())
	}
	if f := l.missingRequired(); f != "" {
		return fmt.Errorf("%s needs --%s (see %s --help)", l.name(), f, l.name())
	}
	return app.RunContext(ctx, l.args(args[0]))
}

// Main is the main function of both command lines: it runs app on the
// process's arguments, cancels the command's context on SIGINT or
// SIGTERM, and on failure prints the error on one line of stderr, after
// the program's name, and exits with status 1.
func Main(app *cli.App) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, app, os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s\n", app.Name, OneLine(err))
		os.Exit(1)
	}
}

// OneLine is err's message on one line: line breaks (errors.Join puts one
// between the errors it joins) become "; ".
func OneLine(err error) string {
	lines := strings.FieldsFunc(err.Error(), func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// Lint checks what Run relies on in app's command tree: a flag name is a
// switch everywhere or takes a value everywhere (Run moves flags before it
// knows the command), and no command defines a name twice.
func Lint(app *cli.App) error {
	var errs []error
	kinds := map[string]bool{}
	where := map[string]string{}
	check := func(at string, flags []cli.Flag) {
		seen := map[string]bool{}
		for _, f := range flags {
			for _, n := range f.Names() {
				if seen[n] {
					errs = append(errs, fmt.Errorf("%s defines -%s twice", at, n))
				}
				seen[n] = true
				if w, ok := where[n]; ok && kinds[n] != takesValue(f) {
					errs = append(errs, fmt.Errorf("-%s takes a value in one of %s and %s but not in the other", n, w, at))
				}
				kinds[n], where[n] = takesValue(f), at
			}
		}
	}
	check(app.Name, app.Flags)
	walk(app.Commands, func(parents []string, c *cli.Command) {
		check(strings.Join(append(append([]string{app.Name}, parents...), c.Name), " "), c.Flags)
	})
	return errors.Join(errs...)
}
