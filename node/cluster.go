package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/market"
)

// This file puts ferryd in a cluster of nodes sharing one database
// (package cluster): its node ID and roles, the identity its market nodes
// share, which steps of the deal pipeline it does, and the files it
// serves to and reads from the other nodes.

// ClusterConfig places this ferryd among the nodes sharing its database.
type ClusterConfig struct {
	// NodeID names this node in the cluster; empty uses the one generated
	// at first start and kept in the repo (node.id).
	NodeID string
	// Roles are the work this node does: market (the deal protocols on
	// libp2p, admission, the publisher), transfer, sealing, index,
	// retrieval. Empty: all of them.
	Roles []string
	// LeaseTimeout is how long the work of a node that died waits before
	// another node takes it over.
	LeaseTimeout Duration
}

// NodeID returns the node ID kept in the repo, generating it at first
// start.
func (r *Repo) NodeID() (string, error) {
	p := r.Path("node.id")
	b, err := os.ReadFile(p)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading the node ID: %w", err)
	}
	id := cluster.NewNodeID()
	if err := writeFileAtomic(p, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("saving the node ID: %w", err)
	}
	return id, nil
}

// sharedIdentity returns the libp2p identity of the cluster: the first
// node's, which every node uses (market nodes serve it to clients on the
// addresses written to the miner actor; every node signs IPNI
// advertisements with it). A single node keeps its repo's key.
func sharedIdentity(ctx context.Context, n *Node, own crypto.PrivKey) (crypto.PrivKey, error) {
	b, err := crypto.MarshalPrivateKey(own)
	if err != nil {
		return nil, fmt.Errorf("encoding the libp2p identity: %w", err)
	}
	shared, err := cluster.Shared(ctx, n.DB, "libp2p-key", b)
	if err != nil {
		return nil, err
	}
	k, err := crypto.UnmarshalPrivateKey(shared)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's libp2p identity: %w", err)
	}
	if !k.Equals(own) {
		n.logf("cluster: serving the cluster's libp2p identity, not the repo's libp2p.key")
	}
	return k, nil
}

// joinCluster registers the node with its roles and addresses and starts
// its heartbeat.
func (n *Node) joinCluster(ctx context.Context) error {
	cfg := n.Config.Cluster
	roles, err := cluster.ParseRoles(cfg.Roles)
	if err != nil {
		return fmt.Errorf("Cluster.Roles: %w", err)
	}
	id := cfg.NodeID
	if id == "" {
		if id, err = n.Repo.NodeID(); err != nil {
			return err
		}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("generating the cluster secret: %w", err)
	}
	if n.clusterSecret, err = cluster.Shared(ctx, n.DB, "secret", secret); err != nil {
		return err
	}
	if n.clusterToken, err = auth.Mint(n.clusterSecret, remotePerm); err != nil {
		return fmt.Errorf("minting the cluster token: %w", err)
	}
	var addrs []string
	for _, a := range n.announceAddrs() {
		addrs = append(addrs, a.String())
	}
	n.Cluster, err = cluster.Join(ctx, cluster.Config{
		DB: n.DB, NodeID: id, Roles: roles, LeaseTimeout: cfg.LeaseTimeout.Std(), Logf: n.logf,
		Addresses: cluster.Addresses{API: "http://" + n.Config.API.Listen, HTTP: n.RetrievalURL(), Libp2p: addrs},
	})
	if err != nil {
		return err
	}
	n.closers = append(n.closers, n.Cluster.Close)
	for kind, p := range map[string]string{"staging": n.Repo.Path("staging"), "sectors": n.Repo.Path("sectors")} {
		if err := n.Cluster.AddPath(ctx, kind, p); err != nil {
			return err
		}
	}
	return nil
}

// has reports whether this node runs role r.
func (n *Node) has(r cluster.Role) bool { return n.Cluster == nil || n.Cluster.Has(r) }

// nodeID is this node's ID in the cluster.
func (n *Node) nodeID() string {
	if n.Cluster == nil {
		return ""
	}
	return n.Cluster.NodeID()
}

// doesStep tells the market which steps of the pipeline this node does:
// transfers with the transfer role, AddPiece with sealing, indexing with
// index, and the rest (publishing and following the deal to activation)
// with market.
func (n *Node) doesStep(cp market.Checkpoint) bool {
	switch cp {
	case market.Accepted:
		return n.has(cluster.RoleTransfer)
	case market.PublishConfirmed:
		return n.has(cluster.RoleSealing)
	case market.AddedPiece:
		return n.has(cluster.RoleIndex)
	}
	return n.has(cluster.RoleMarket)
}

// marketAddrs are the addresses written to the miner actor: those of every
// live market node, this one's first, since all serve the one identity.
func (n *Node) marketAddrs(ctx context.Context) ([]ma.Multiaddr, error) {
	out := n.announceAddrs()
	if n.Cluster == nil {
		return out, nil
	}
	nodes, err := n.Cluster.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, a := range out {
		seen[a.String()] = true
	}
	for _, nd := range nodes {
		if nd.ID == n.nodeID() || !nd.Alive || !nd.Roles.Has(cluster.RoleMarket) {
			continue
		}
		for _, s := range nd.Libp2p {
			if m, err := ma.NewMultiaddr(s); err == nil && !seen[s] {
				seen[s] = true
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// remotePerm is the permission of the token nodes present to each other.
const remotePerm = auth.Read

// peerToken reports whether token is the cluster's: one the nodes present
// to each other.
func (n *Node) peerToken(token string) bool {
	perms, err := auth.Verify(n.clusterSecret, token)
	return err == nil && hasPerm(perms, remotePerm)
}

// remoteHandler serves this node's files to the other nodes of the
// cluster, as Lotus' /remote does, with ranged reads:
//
//	GET /remote/staging/<name>  a staging file (a deal's data)
//	GET /remote/piece/<cid>     a piece, unpadded, from this node's unsealed sectors
//
// A request needs the cluster's token (Authorization: Bearer …).
func (n *Node) remoteHandler(local index.PieceSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !n.peerToken(token) {
			http.Error(w, "a cluster token is needed", http.StatusUnauthorized)
			return
		}
		kind, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/remote/"), "/")
		switch kind {
		case "staging":
			if name == "" || name != path.Base(name) || strings.HasPrefix(name, ".") {
				http.Error(w, "bad staging file name", http.StatusBadRequest)
				return
			}
			f, err := os.Open(filepath.Join(n.Repo.Path("staging"), name))
			if err != nil {
				http.Error(w, "no such staging file", http.StatusNotFound)
				return
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			http.ServeContent(w, r, name, st.ModTime(), f)
		case "piece":
			c, err := cid.Decode(name)
			if err != nil {
				http.Error(w, "bad piece CID", http.StatusBadRequest)
				return
			}
			pr, err := local.ReadPiece(r.Context(), c)
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			defer pr.Close()
			http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(pr, 0, pr.Size()))
		default:
			http.NotFound(w, r)
		}
	})
}

func hasPerm(perms []auth.Permission, p auth.Permission) bool {
	for _, q := range perms {
		if q == p {
			return true
		}
	}
	return false
}

// nodeURL returns the HTTP endpoint of a live node of the cluster.
func (n *Node) nodeURL(ctx context.Context, id string) (string, error) {
	nd, err := n.Cluster.Node(ctx, id)
	if err != nil {
		return "", err
	}
	if !nd.Alive {
		return "", fmt.Errorf("node %s (last heartbeat %s): %w", id, nd.Heartbeat.Format(time.DateTime), market.ErrNodeDown)
	}
	return strings.TrimSuffix(nd.HTTPURL, "/"), nil
}

// remoteGet sends an authenticated GET for the file at p of node id.
func (n *Node) remoteGet(ctx context.Context, id, p string, rangeHeader string) (*http.Response, error) {
	base, err := n.nodeURL(ctx, id)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+n.clusterToken)
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s from node %s: %w", p, id, err)
	}
	want := http.StatusOK
	if rangeHeader != "" {
		want = http.StatusPartialContent
	}
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("reading %s from node %s: %s: %s", p, id, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// OpenStaging streams the staging file at p on node id (market.Files).
func (n *Node) OpenStaging(ctx context.Context, id, p string) (io.ReadCloser, error) {
	resp, err := n.remoteGet(ctx, id, "/remote/staging/"+path.Base(filepath.ToSlash(p)), "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// pieceSource reads pieces from this node's unsealed sectors, and from
// another node's when none here holds the piece.
func (n *Node) pieceSource(local index.PieceSource) index.PieceSource {
	return index.PieceSourceFunc(func(ctx context.Context, c cid.Cid) (index.PieceReader, error) {
		r, err := local.ReadPiece(ctx, c)
		if n.Cluster == nil || n.Sealing == nil || !errors.Is(err, index.ErrNoUnsealedCopy) {
			return r, err
		}
		nodes, lerr := n.Sealing.UnsealedElsewhere(ctx, c)
		if lerr != nil {
			return nil, lerr
		}
		for _, id := range nodes {
			rr, rerr := n.openRemotePiece(ctx, id, c)
			if rerr == nil {
				return rr, nil
			}
			err = fmt.Errorf("%w; %w", err, rerr)
		}
		return nil, err
	})
}

// openRemotePiece opens piece c on node id for ranged reads.
func (n *Node) openRemotePiece(ctx context.Context, id string, c cid.Cid) (index.PieceReader, error) {
	p := "/remote/piece/" + c.String()
	resp, err := n.remoteGet(ctx, id, p, "bytes=0-0")
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	// Content-Range: bytes 0-0/<size>
	_, total, ok := strings.Cut(resp.Header.Get("Content-Range"), "/")
	size, perr := strconv.ParseInt(total, 10, 64)
	if !ok || perr != nil {
		return nil, fmt.Errorf("reading piece %s from node %s: no size in %q", c, id, resp.Header.Get("Content-Range"))
	}
	return &remotePiece{n: n, node: id, path: p, size: size, ctx: context.WithoutCancel(ctx)}, nil
}

// remotePiece reads a piece of another node with one ranged GET per
// ReadAt.
type remotePiece struct {
	n    *Node
	node string
	path string
	size int64
	ctx  context.Context
}

func (r *remotePiece) Size() int64  { return r.size }
func (r *remotePiece) Close() error { return nil }

func (r *remotePiece) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.size)
	resp, err := r.n.remoteGet(r.ctx, r.node, r.path, fmt.Sprintf("bytes=%d-%d", off, end-1))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	got, err := io.ReadFull(resp.Body, p[:end-off])
	if err != nil {
		return got, fmt.Errorf("reading %s from node %s: %w", r.path, r.node, err)
	}
	if end-off < int64(len(p)) {
		return got, io.EOF
	}
	return got, nil
}

// ClusterList lists the nodes of the cluster with their leases (the
// operator API).
func (a *nodeAPI) ClusterList(ctx context.Context) ([]cluster.NodeInfo, error) {
	return a.n.Cluster.Nodes(ctx)
}
