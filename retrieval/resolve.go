package retrieval

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
)

// maxPathCAR bounds the bytes of the blocks ResolvePath accepts: a path's
// directory and shard blocks, which are small.
const maxPathCAR = 64 << 20

// ResolvePath asks the trustless gateway at baseURL for the blocks of a
// UnixFS path under root (segments separated by "/", as in
// /ipfs/{root}/{path}; unescaped names) and returns the CID the path names.
// The path is walked again over the blocks received, each checked against
// its hash, so a server cannot name a CID the root does not lead to: such
// a response gives an error wrapping ErrVerification. A path the blocks
// received prove absent (a directory without the name, a file in the
// way) is an error that does not. An empty path is root itself.
func ResolvePath(ctx context.Context, baseURL string, root cid.Cid, path string, opts ...FetchOption) (cid.Cid, error) {
	var segs []string
	for _, s := range strings.Split(strings.Trim(path, "/"), "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 {
		return root, nil
	}
	for _, s := range segs {
		if s == "." || s == ".." {
			return cid.Undef, fmt.Errorf("resolving %s/%s: %w: segment %q is not allowed", root, path, errBadPath, s)
		}
	}
	full := root.String() + "/" + escapePath(segs)
	resp, err := get(ctx, baseURL, "/ipfs/"+full+"?dag-scope=block",
		CARContentType+"; version=1; order=dfs; dups=n", opts)
	if err != nil {
		return cid.Undef, fmt.Errorf("resolving %s: %w", full, err)
	}
	defer resp.Body.Close()
	got, carRoot, err := readPathBlocks(resp.Body)
	if err != nil {
		return cid.Undef, fmt.Errorf("resolving %s: %w", full, err)
	}
	rootData, err := got.load(ctx, root)
	if err != nil {
		return cid.Undef, fmt.Errorf("resolving %s: %w", full, err)
	}
	res, err := resolvePath(ctx, got, root, rootData, segs)
	if errors.Is(err, errNoSuchName) || errors.Is(err, errNotDirectory) {
		// The blocks sent prove the path is not there.
		return cid.Undef, fmt.Errorf("resolving %s: %w", full, err)
	}
	if err != nil {
		return cid.Undef, fmt.Errorf("resolving %s over the blocks received: %w: %v", full, ErrVerification, err)
	}
	// Gateways name the root (older ones) or the terminal (boxo) as
	// the CAR's root.
	if !carRoot.Equals(root) && !carRoot.Equals(res.terminal.c) {
		return cid.Undef, fmt.Errorf("resolving %s: %w: the CAR's root is %s, neither the root nor %s", full, ErrVerification, carRoot, res.terminal.c)
	}
	return res.terminal.c, nil
}

// receivedBlocks are blocks read from a CAR, each checked against its CID.
type receivedBlocks map[cid.Cid][]byte

// readPathBlocks reads the CAR of a path request: one root, at most
// maxPathCAR bytes of blocks.
func readPathBlocks(r io.Reader) (receivedBlocks, cid.Cid, error) {
	br, err := car.NewBlockReader(bufio.NewReader(r),
		car.MaxAllowedHeaderSize(1<<20), car.MaxAllowedSectionSize(maxBlockSize))
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("%w: reading the CAR header: %v", ErrVerification, err)
	}
	if len(br.Roots) != 1 {
		return nil, cid.Undef, fmt.Errorf("%w: the CAR has %d roots, want one", ErrVerification, len(br.Roots))
	}
	got := receivedBlocks{}
	total := 0
	for {
		b, err := br.Next() // checks the block's hash
		if errors.Is(err, io.EOF) {
			return got, br.Roots[0], nil
		}
		if err != nil {
			return nil, cid.Undef, fmt.Errorf("%w: reading block %d: %v", ErrVerification, len(got), err)
		}
		if total += len(b.RawData()); total > maxPathCAR {
			return nil, cid.Undef, fmt.Errorf("%w: the path's blocks exceed %d bytes", ErrVerification, maxPathCAR)
		}
		got[b.Cid()] = b.RawData()
	}
}

func (g receivedBlocks) load(_ context.Context, c cid.Cid) ([]byte, error) {
	if isIdentity(c) {
		return identityData(c)
	}
	if data, ok := g[c]; ok {
		return data, nil
	}
	return nil, fmt.Errorf("%w: block %s was not sent", ErrVerification, c)
}
