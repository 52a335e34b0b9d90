package retrieval

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"

	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/piece"
)

// FetchOption configures FetchPiece and FetchCAR.
type FetchOption func(*fetchConfig)

type fetchConfig struct {
	client *http.Client
}

// WithHTTPClient sets the HTTP client (default http.DefaultClient).
func WithHTTPClient(c *http.Client) FetchOption {
	return func(fc *fetchConfig) { fc.client = c }
}

// ErrVerification is wrapped by fetch errors where the data received does
// not match what was asked for.
var ErrVerification = errors.New("retrieved data failed verification")

func get(ctx context.Context, baseURL, path, accept string, opts []FetchOption) (*http.Response, error) {
	fc := fetchConfig{client: http.DefaultClient}
	for _, o := range opts {
		o(&fc)
	}
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/") + path)
	if err != nil {
		return nil, fmt.Errorf("building the URL from %q: %w", baseURL, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := fc.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// FetchPiece downloads piece pieceCid (v1 or v2) from the retrieval server
// at baseURL into w, computing its commitment as the bytes pass; a mismatch
// gives an error wrapping ErrVerification after everything was written. A
// v2 names the payload: w gets its bytes alone, however much of the
// piece's zero fill the server sends after them.
func FetchPiece(ctx context.Context, baseURL string, pieceCid cid.Cid, w io.Writer, opts ...FetchOption) error {
	v1, size, payload, err := piece.ParseAnyCID(pieceCid)
	if err != nil {
		return fmt.Errorf("fetching piece: %w", err)
	}
	want, err := piece.ParseCID(v1)
	if err != nil {
		return fmt.Errorf("fetching piece: %w", err)
	}
	resp, err := get(ctx, baseURL, "/piece/"+pieceCid.String(), "", opts)
	if err != nil {
		return fmt.Errorf("fetching piece %s: %w", pieceCid, err)
	}
	defer resp.Body.Close()
	calc := piece.NewCalc()
	out := w
	if size != 0 {
		out = &limitedWriter{w: w, n: int64(payload)}
	}
	n, err := io.Copy(io.MultiWriter(out, calc), resp.Body)
	if err != nil {
		calc.Sum()
		return fmt.Errorf("fetching piece %s: %w", pieceCid, err)
	}
	var comm piece.Commitment
	if size != 0 {
		if uint64(n) < payload {
			calc.Sum()
			return fmt.Errorf("fetching piece %s: %w: %d bytes came, its payload is %d", pieceCid, ErrVerification, n, payload)
		}
		comm, err = calc.SumAs(size)
	} else {
		comm, err = calc.Sum()
	}
	if err != nil {
		return fmt.Errorf("fetching piece %s: computing the commitment: %w: %v", pieceCid, ErrVerification, err)
	}
	if comm.Root != want {
		return fmt.Errorf("fetching piece %s: %w: the data has commitment %s", pieceCid, ErrVerification, comm.CID())
	}
	return nil
}

// limitedWriter passes the first n bytes to w and drops the rest, saying
// they were written.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	k := min(int64(len(p)), l.n)
	if k > 0 {
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		l.n -= k
	}
	return len(p), nil
}

// FetchCAR downloads the whole DAG under root from the trustless gateway at
// baseURL and writes it to w as a CARv1 (root first, depth-first, each
// block once). Every block's hash is checked, every block must be linked
// from one before it, and every link must arrive: otherwise the error wraps
// ErrVerification. Blocks reach w as they are verified.
func FetchCAR(ctx context.Context, baseURL string, root cid.Cid, w io.Writer, opts ...FetchOption) error {
	resp, err := get(ctx, baseURL, "/ipfs/"+root.String()+"?dag-scope=all",
		CARContentType+"; version=1; order=dfs; dups=n", opts)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", root, err)
	}
	defer resp.Body.Close()
	if err := VerifyCAR(resp.Body, root, w); err != nil {
		return fmt.Errorf("fetching %s: %w", root, err)
	}
	return nil
}

// VerifyCAR reads a CARv1 or CARv2 from r that must hold exactly the
// complete DAG under root, and copies it to w as a CARv1 while checking.
func VerifyCAR(r io.Reader, root cid.Cid, w io.Writer) error {
	br, err := car.NewBlockReader(bufio.NewReaderSize(r, 256<<10),
		car.MaxAllowedHeaderSize(1<<20), car.MaxAllowedSectionSize(maxBlockSize))
	if err != nil {
		return fmt.Errorf("%w: reading the CAR header: %v", ErrVerification, err)
	}
	if len(br.Roots) != 1 || !br.Roots[0].Equals(root) {
		return fmt.Errorf("%w: the CAR's roots are %v, want [%s]", ErrVerification, br.Roots, root)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := carv1.WriteHeader(bw, []cid.Cid{root}); err != nil {
		return err
	}
	pending := map[cid.Cid]struct{}{root: {}}
	seen := map[cid.Cid]struct{}{}
	for {
		blk, err := br.Next() // checks the block's hash
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: reading block %d: %v", ErrVerification, len(seen), err)
		}
		c := blk.Cid()
		if _, dup := seen[c]; dup {
			continue
		}
		if _, ok := pending[c]; !ok {
			return fmt.Errorf("%w: block %s is not linked from the blocks before it", ErrVerification, c)
		}
		delete(pending, c)
		seen[c] = struct{}{}
		ls, err := links(c, blk.RawData())
		if err != nil {
			return fmt.Errorf("%w: %v", ErrVerification, err)
		}
		for _, l := range ls {
			if _, ok := seen[l]; !ok && !isIdentity(l) {
				pending[l] = struct{}{}
			}
		}
		if _, err := carv1.WriteBlock(bw, c, blk.RawData()); err != nil {
			return err
		}
	}
	if len(pending) > 0 {
		var some cid.Cid
		for c := range pending {
			some = c
			break
		}
		return fmt.Errorf("%w: the DAG is incomplete: %d linked blocks missing (%s among them)", ErrVerification, len(pending), some)
	}
	return bw.Flush()
}
