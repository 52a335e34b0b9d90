package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

var clusterCmd = &cli.Command{
	Name:  "cluster",
	Usage: "the ferryd nodes sharing this database",
	Subcommands: []*cli.Command{{
		Name:  "list",
		Usage: "list the nodes: roles, addresses, heartbeats, storage paths and the leases each holds",
		Flags: []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			return withAPI(cctx, func(a api.Ferry) error {
				nodes, err := a.ClusterList(cctx.Context)
				if err != nil {
					return err
				}
				return cliutil.Print(cctx, nodes, func(w io.Writer) {
					for i, n := range nodes {
						if i > 0 {
							fmt.Fprintln(w)
						}
						state := "down"
						switch {
						case n.Heartbeat.IsZero():
							state = "stopped"
						case n.Alive:
							state = "alive"
						}
						beat := "never"
						if !n.Heartbeat.IsZero() {
							beat = time.Since(n.Heartbeat).Round(time.Second).String() + " ago"
						}
						this := ""
						if i == 0 {
							this = " (this node)"
						}
						fmt.Fprintf(w, "%s%s: %s, heartbeat %s\n", n.ID, this, state, beat)
						fmt.Fprintf(w, "  roles   %s\n", n.Roles)
						fmt.Fprintf(w, "  http    %s   api %s\n", n.HTTPURL, n.APIURL)
						if len(n.Libp2p) > 0 {
							fmt.Fprintf(w, "  libp2p  %s\n", strings.Join(n.Libp2p, " "))
						}
						for _, p := range n.Paths {
							fmt.Fprintf(w, "  %-7s %s\n", p.Kind, p.Path)
						}
						fmt.Fprintf(w, "  leases  %d\n", len(n.Leases))
						for _, l := range n.Leases {
							fmt.Fprintf(w, "    %s (since %s)\n", l.Name, l.TakenAt.Format(time.DateTime))
						}
					}
				})
			})
		},
	}},
}
