package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

var retrieveCmd = &cli.Command{
	Name:      "retrieve",
	Usage:     "get data back from a provider over HTTP, verified",
	ArgsUsage: "[PAYLOADCID[/PATH]]",
	Description: "With --piece PIECECID, fetches the piece's bytes (/piece/{cid}) and checks their\n" +
		"commitment. With a payload CID, fetches the whole DAG as a CAR (/ipfs/{cid}),\n" +
		"checking every block's hash and that no block is missing, and writes the CAR,\n" +
		"or with --extract the files and folders it holds. PAYLOADCID/PATH (or\n" +
		"/ipfs/PAYLOADCID/PATH) fetches only the file or folder the UnixFS path names;\n" +
		"the path is walked over blocks checked here, not taken on the provider's word.\n\n" +
		"The provider's HTTP address comes from its retrieval transports (found through\n" +
		"the chain and asked over libp2p); --url gives it directly, and then --provider\n" +
		"is not needed.\n\n" +
		"OUT must not exist. Data is written to OUT.partial and renamed only once\n" +
		"verified; a failed retrieval leaves nothing behind and exits non-zero.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "provider", Usage: "the storage provider's miner address (f0…)"},
		&cli.StringFlag{Name: "piece", Usage: "retrieve this piece CID (v1, or v2 for its payload alone) instead of a payload CID"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write the data", Required: true},
		&cli.BoolFlag{Name: "extract", Usage: "write the files of the DAG instead of a CAR"},
		&cli.StringFlag{Name: "url", Usage: "the provider's HTTP retrieval base URL (e.g. http://host:7777)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress on the terminal"},
		jsonFlag,
	},
	Action: retrieveAction,
}

func retrieveAction(c *cli.Context) error {
	req := client.RetrieveRequest{Out: c.String("output"), Extract: c.Bool("extract")}
	var err error
	switch pc := c.String("piece"); {
	case pc != "" && c.Args().Present():
		return errors.New("give either --piece PIECECID or a payload CID, not both")
	case pc != "":
		if req.CID, err = cid.Decode(pc); err != nil {
			return fmt.Errorf("--piece %q is not a CID: %w", pc, err)
		}
		req.Piece = true
	case c.Args().Present():
		if c.NArg() > 1 {
			return fmt.Errorf("one payload CID, not %d arguments", c.NArg())
		}
		arg := strings.TrimPrefix(c.Args().First(), "/ipfs/")
		root, path, _ := strings.Cut(arg, "/")
		if req.CID, err = cid.Decode(root); err != nil {
			return fmt.Errorf("payload CID %q: %w", root, err)
		}
		req.Path = path
	default:
		return errors.New("nothing to retrieve: give a payload CID or --piece PIECECID")
	}

	if c.IsSet("provider") {
		// Checked even with --url: it names the provider in messages.
		if _, err := parseMiner(c.String("provider")); err != nil {
			return err
		}
	}
	if req.BaseURL = c.String("url"); req.BaseURL == "" {
		if !c.IsSet("provider") {
			return errors.New("no provider given (--provider f0… or --url)")
		}
		err := withProvider(c, c.String("provider"), true, func(_ chain.Node, h host.Host, p *client.Provider) error {
			u, err := client.ProviderHTTPURL(c.Context, h, p)
			req.BaseURL = u
			return err
		})
		if err != nil {
			return err
		}
	}
	req.Source = c.String("provider")

	prog := cliutil.NewProgress(c.Bool("quiet") || c.Bool("json"))
	req.Progress = func(n int64) { prog.Show("retrieving %s: %s received", req.CID, cliutil.HumanBytes(n)) }
	res, err := client.Retrieve(c.Context, req)
	prog.Done()
	if err != nil {
		return err
	}
	return cliutil.Print(c, res, func(w io.Writer) {
		what := "CAR"
		switch {
		case req.Piece:
			what = "piece"
		case req.Extract:
			what = "files"
		}
		fmt.Fprintf(w, "retrieved %s (%s, %s verified) from %s into %s\n", res.CID, what, cliutil.HumanBytes(res.Bytes), res.URL, res.Out)
	})
}
