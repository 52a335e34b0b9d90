package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/node"
)

var dbCmd = &cli.Command{
	Name:  "db",
	Usage: "the repo's database",
	Subcommands: []*cli.Command{
		{
			Name:      "migrate-to",
			Usage:     "copy the repo's SQLite database into an empty PostgreSQL database",
			ArgsUsage: "URL",
			Description: `Copies every table of the repo's ferry.db (deals and their logs, tags,
publish batches, sectors and pieces, the piece index, the IPNI chain, chain
messages and nonces, the ask) into the PostgreSQL database at URL
(postgres://user:password@host:5432/dbname), which must hold no Ferry rows
yet; its schema is created first. The copy is one transaction, then each
table is checked row for row (its count and a checksum of every row, read
back from both databases). ferryd must be stopped. ferry.db is left as it
was; set Database.URL (or FERRY_DATABASE_URL) to run on the copy.`,
			Flags: []cli.Flag{jsonFlag},
			Action: func(cctx *cli.Context) error {
				if cctx.NArg() != 1 || !db.IsURL(cctx.Args().First()) {
					return errors.New("usage: ferryd db migrate-to postgres://user:password@host:5432/dbname (see ferryd db migrate-to --help)")
				}
				res, err := migrateTo(cctx.Context, repoDir(cctx), cctx.Args().First(), func(t string) {
					if !cctx.Bool("json") {
						fmt.Fprintf(cctx.App.ErrWriter, "copying %s\n", t)
					}
				})
				if err != nil {
					return err
				}
				return cliutil.Print(cctx, res, func(w io.Writer) {
					for _, t := range res.Tables {
						fmt.Fprintf(w, "%-24s %10d rows  checksum %s\n", t.Table, t.Rows, t.Checksum[:16])
					}
					fmt.Fprintf(w, "\nEvery table matches row for row. To run on PostgreSQL, set in config.toml:\n\n%s\n\nor export %s=<URL> (the URL with its password).\n",
						res.ConfigLine, node.EnvDatabaseURL)
				})
			},
		},
	},
}

// migrated is what db migrate-to prints.
type migrated struct {
	URL        string         `json:"url"` // without its password
	Tables     []db.TableCopy `json:"tables"`
	ConfigLine string         `json:"configLine"`
}

// migrateTo copies the SQLite database of the repo at dir into the
// PostgreSQL database at url.
func migrateTo(ctx context.Context, dir, url string, progress func(table string)) (*migrated, error) {
	repo, err := node.OpenRepo(dir)
	if err != nil {
		return nil, err
	}
	path := repo.Path("ferry.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no SQLite database to copy: %w", err)
	}
	if running(ctx, dir) {
		return nil, errors.New("ferryd is running on this repo: stop it first, so nothing changes during the copy")
	}
	src, err := db.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := db.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	tables, err := db.Copy(ctx, dst, src, progress)
	if err != nil {
		return nil, fmt.Errorf("copying %s to %s: %w", path, db.RedactURL(url), err)
	}
	return &migrated{
		URL: db.RedactURL(url), Tables: tables,
		ConfigLine: fmt.Sprintf("[Database]\nURL = %q", db.RedactURL(url)),
	}, nil
}

// running reports whether a ferryd answers on the repo's operator API.
func running(ctx context.Context, dir string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	f, closer, err := api.Dial(ctx, dir)
	if err != nil {
		return false
	}
	defer closer()
	_, err = f.Info(ctx)
	return err == nil
}
