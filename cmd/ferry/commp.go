package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/piece/carroot"
)

// progressFrom is the file size from which ferry commp shows progress.
const progressFrom = 64 << 20

var commpCmd = &cli.Command{
	Name:      "commp",
	Usage:     "compute a file's piece CID (CommP, v1 and v2) and sizes; for a CAR also its root",
	ArgsUsage: "FILE",
	Flags: []cli.Flag{
		jsonFlag,
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress on the terminal"},
	},
	Action: runCommP,
}

// commpResult is what ferry commp prints.
type commpResult struct {
	PieceCID    string `json:"pieceCid"`
	PieceCIDv2  string `json:"pieceCidV2"`
	PayloadSize uint64 `json:"payloadSize"`
	PieceSize   uint64 `json:"pieceSize"`
	RootCID     string `json:"rootCid,omitempty"`
}

func runCommP(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("commp: give exactly one FILE")
	}
	path := c.Args().First()
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("commp: %w", err)
	}
	prog := cliutil.NewProgress(c.Bool("quiet") || st.Size() < progressFrom)
	cm, err := piece.FromFile(c.Context, path, func(done, total uint64) {
		prog.Show("commp %s / %s (%d%%)", cliutil.HumanBytes(int64(done)), cliutil.HumanBytes(int64(total)), done*100/max(total, 1))
	})
	prog.Done()
	if err != nil {
		return err
	}
	res := commpResult{
		PieceCID:    cm.CID().String(),
		PieceCIDv2:  cm.CIDv2().String(),
		PayloadSize: cm.PayloadSize,
		PieceSize:   uint64(cm.Size),
	}
	if roots, err := carroot.FileRoots(path); err == nil {
		res.RootCID = roots[0].String()
	}
	return cliutil.Print(c, res, func(w io.Writer) {
		fmt.Fprintf(w, "Piece CID:     %s\n", res.PieceCID)
		fmt.Fprintf(w, "Piece CID v2:  %s\n", res.PieceCIDv2)
		fmt.Fprintf(w, "Payload size:  %d bytes (%s)\n", res.PayloadSize, cliutil.HumanBytes(int64(res.PayloadSize)))
		fmt.Fprintf(w, "Piece size:    %d bytes (%s padded)\n", res.PieceSize, cliutil.HumanBytes(int64(res.PieceSize)))
		if res.RootCID != "" {
			fmt.Fprintf(w, "Root CID:      %s\n", res.RootCID)
		}
	})
}
