package cliutil

import (
	"reflect"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestInterspersed(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{{
		Name: "car",
		Subcommands: []*cli.Command{{
			Name:  "create",
			Flags: []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}}, &cli.BoolFlag{Name: "json"}},
		}},
	}}}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"ferry", "car", "create", "a", "b", "-o", "x.car", "--json"}, []string{"ferry", "car", "create", "-o", "x.car", "--json", "--", "a", "b"}},
		{[]string{"ferry", "car", "create", "-o", "x.car", "a"}, []string{"ferry", "car", "create", "-o", "x.car", "--", "a"}},
		{[]string{"ferry", "car", "create", "--output=x.car", "a", "--", "-weird"}, []string{"ferry", "car", "create", "--output=x.car", "--", "a", "-weird"}},
		{[]string{"ferry", "car", "create", "-"}, []string{"ferry", "car", "create", "--", "-"}},
		{[]string{"ferry", "car"}, []string{"ferry", "car"}},
		{[]string{"ferry"}, []string{"ferry"}},
	} {
		if got := Interspersed(app, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Interspersed(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
