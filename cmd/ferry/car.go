package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

var carCmd = &cli.Command{
	Name:  "car",
	Usage: "prepare data as CAR files",
	Subcommands: []*cli.Command{
		{
			Name:      "create",
			Usage:     "import files and directories as a UnixFS DAG into a CARv1 file",
			ArgsUsage: "PATH... -o FILE.car",
			Description: "One PATH becomes the root (a file or a directory); several PATHs are wrapped\n" +
				"in a directory of their base names. The DAG is CIDv1, sha2-256, raw leaves,\n" +
				"balanced, 1 MiB chunks (IPIP-499 unixfs-v1-2025, as `ipfs add --cid-version=1`\n" +
				"does with Kubo's modern profile). Prints the root CID on stdout.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "the CAR file to write", Required: true},
				&cli.Int64Flag{Name: "chunk-size", Usage: "leaf size in bytes", Value: client.DefaultChunkSize},
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress on the terminal"},
				jsonFlag,
			},
			Action: carCreate,
		},
	},
}

func carCreate(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("car create: give at least one PATH to import")
	}
	p := cliutil.NewProgress(c.Bool("quiet"))
	res, err := client.CreateCAR(c.Context, c.Args().Slice(), c.String("output"), client.CAROptions{
		ChunkSize: c.Int64("chunk-size"),
		Progress:  func(n int64) { p.Show("imported %s", cliutil.HumanBytes(n)) },
	})
	p.Done()
	if err != nil {
		return fmt.Errorf("car create: %w", err)
	}
	out := struct {
		RootCID   string `json:"rootCid"`
		CARFile   string `json:"carFile"`
		CARSize   int64  `json:"carSize"`
		Blocks    int    `json:"blocks"`
		DataBytes int64  `json:"dataBytes"` // file bytes imported
	}{res.Root.String(), c.String("output"), res.Size, res.Blocks, res.DataBytes}
	return cliutil.Print(c, out, func(w io.Writer) {
		fmt.Fprintln(w, res.Root)
		fmt.Fprintf(c.App.ErrWriter, "wrote %s: %s, %d blocks, %s of data\n", out.CARFile, cliutil.HumanBytes(res.Size), res.Blocks, cliutil.HumanBytes(res.DataBytes))
	})
}
