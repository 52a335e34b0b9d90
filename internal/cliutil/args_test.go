package cliutil

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// testApp is a small tree with the shapes of ferry's and ferryd's: a common
// --repo on every command, a group with a leaf, and a leaf with a required
// flag. Each leaf records what it saw.
func testApp(seen *[]string) *cli.App {
	record := func(c *cli.Context) error {
		*seen = append(*seen, "repo="+c.String("repo"), "json="+c.String("json"), "o="+c.String("output"), "args="+strings.Join(c.Args().Slice(), ","))
		return nil
	}
	app := &cli.App{Name: "tool", Version: "v1", Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{}, Commands: []*cli.Command{{
		Name: "car",
		Subcommands: []*cli.Command{{
			Name:   "create",
			Flags:  []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}}, JSONFlag()},
			Action: record,
		}},
	}, {
		Name:   "deal",
		Flags:  []cli.Flag{&cli.StringFlag{Name: "provider", Required: true}, JSONFlag()},
		Action: record,
	}}}
	Setup(app, &cli.StringFlag{Name: "repo"})
	return app
}

func TestReorder(t *testing.T) {
	app := testApp(new([]string))
	app.Setup()
	for _, tc := range []struct{ in, want string }{
		{"tool car create a b -o x.car --json", "tool car create -o x.car --json a b"},
		{"tool car create -o x.car a", "tool car create -o x.car a"},
		{"tool car create --output=x.car a -- -weird", "tool car create --output=x.car -- a -weird"},
		{"tool car create -", "tool car create -"},
		{"tool --repo R car create a", "tool car create --repo R a"},
		{"tool car --repo R create a", "tool car create --repo R a"},
		{"tool --json car -o x create --repo=R a", "tool car create --json -o x --repo=R a"},
		{"tool --repo R car", "tool car --repo R"},
		{"tool --help car create", "tool car create --help"},
		{"tool car create a --help", "tool car create --help"},
		{"tool --version", "tool --version"},
		{"tool deal f.car --provider f01000", "tool deal --provider f01000 f.car"},
		{"tool car", "tool car"},
		{"tool", "tool"},
	} {
		in := strings.Fields(tc.in)
		if got := parseLine(app, in).args(in[0]); !reflect.DeepEqual(got, strings.Fields(tc.want)) {
			t.Errorf("%q became %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRunFlagsAnywhere runs the commands with the common flag and the
// leaf's flags in every position.
func TestRunFlagsAnywhere(t *testing.T) {
	want := []string{"repo=R", "json=true", "o=x.car", "args=a,b"}
	for _, line := range []string{
		"--repo R --json car create -o x.car a b",
		"car --repo R create a --json b -o x.car",
		"car create a b --repo R --json -o x.car",
		"--json car create --repo=R a -o x.car b",
		"car create -o x.car --repo R --json -- a b",
	} {
		var seen []string
		app := testApp(&seen)
		if err := Run(context.Background(), app, append([]string{"tool"}, strings.Fields(line)...)); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if !reflect.DeepEqual(seen, want) {
			t.Errorf("%s: the command saw %q, want %q", line, seen, want)
		}
	}
}

// TestRunErrorsOneLine: usage errors are one line naming the help to read,
// and nothing is printed on stdout.
func TestRunErrorsOneLine(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"nosuch", `"nosuch" is not a command of tool (see tool --help)`},
		{"car nosuch", `"nosuch" is not a command of tool car (see tool car --help)`},
		{"deal f.car", "tool deal needs --provider (see tool deal --help)"},
		{"deal --provider", "flag needs an argument: -provider (see tool deal --help)"},
		{"deal --provider f01000 --nope", "flag provided but not defined: -nope (see tool deal --help)"},
		{"--nope car create", "flag provided but not defined: -nope (see tool car create --help)"},
	} {
		var seen []string
		app := testApp(&seen)
		err := Run(context.Background(), app, append([]string{"tool"}, strings.Fields(tc.line)...))
		if err == nil || OneLine(err) != tc.want {
			t.Errorf("%s: %v, want %q", tc.line, err, tc.want)
		}
		if out := app.Writer.(*bytes.Buffer).String(); out != "" || len(seen) > 0 {
			t.Errorf("%s: printed %q, ran %q", tc.line, out, seen)
		}
	}
	// Help is no error, wherever --help is, and a required flag can wait.
	for _, line := range []string{"deal --help", "--help deal", "help deal", "car create x --help"} {
		app := testApp(new([]string))
		if err := Run(context.Background(), app, append([]string{"tool"}, strings.Fields(line)...)); err != nil {
			t.Errorf("%s: %v", line, err)
		}
		if out := app.Writer.(*bytes.Buffer).String(); !strings.Contains(out, "USAGE") {
			t.Errorf("%s printed %q", line, out)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := OneLine(errorString("a\nb \r\n c")); got != "a; b; c" {
		t.Fatalf("%q", got)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestLint(t *testing.T) {
	if err := Lint(testApp(new([]string))); err != nil {
		t.Fatal(err)
	}
	bad := &cli.App{Name: "bad", Commands: []*cli.Command{
		{Name: "a", Flags: []cli.Flag{&cli.BoolFlag{Name: "x"}}},
		{Name: "b", Flags: []cli.Flag{&cli.StringFlag{Name: "x"}, &cli.StringFlag{Name: "y", Aliases: []string{"y"}}}},
	}}
	err := Lint(bad)
	if err == nil || !strings.Contains(err.Error(), "-x takes a value") || !strings.Contains(err.Error(), "bad b defines -y twice") {
		t.Fatalf("Lint: %v", err)
	}
}
