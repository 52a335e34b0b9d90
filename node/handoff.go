package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/build"
	"github.com/ferry-fil/ferry/ipni"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/minerapi"
	"github.com/ferry-fil/ferry/sealing"
)

// This file joins ferryd to lotus-miner both ways: the market handing its
// pieces to a lotus-miner API (Sealing.Backend = "lotus-miner"), and
// ferryd's own sealing serving that API (Sealing.MinerAPIListen).

// connectMiner dials the lotus-miner API of Sealing.MinerAPIInfo (or
// MINER_API_INFO) and makes it the market's sealer, once it has answered
// that it seals for Chain's miner, with the sector size the chain has for
// that miner, and that the token may hand pieces over.
func (n *Node) connectMiner(ctx context.Context) error {
	info := n.Config.Sealing.MinerAPIInfo
	if info == "" {
		info = os.Getenv(minerapi.EnvAPIInfo)
	}
	if info == "" {
		return fmt.Errorf("Sealing.Backend = %q needs the lotus-miner API: set Sealing.MinerAPIInfo or %s to token:/ip4/…/tcp/2345/http (lotus-miner auth api-info --perm admin)",
			BackendLotusMiner, minerapi.EnvAPIInfo)
	}
	c, err := minerapi.Dial(ctx, info)
	if err != nil {
		return fmt.Errorf("Sealing.MinerAPIInfo: %w", err)
	}
	n.closers = append(n.closers, func() error { c.Close(); return nil })
	s, err := minerapi.NewSealer(ctx, c, n.Miner, n.Chain, n.DB)
	if err != nil {
		return fmt.Errorf("Sealing.Backend = %q: %w", BackendLotusMiner, err)
	}
	n.closers = append(n.closers, s.Close)
	if s.SectorSize() != n.sectorSize {
		return fmt.Errorf("the lotus-miner API at %s seals %s sectors, but miner %s has %s sectors on chain", c.URL(),
			s.SectorSize().ShortString(), n.Miner, n.sectorSize.ShortString())
	}
	// The market follows each deal's sealing once a block; the deals of
	// one sector share the miner's answer for half a block.
	v, err := n.Chain.Version(ctx)
	if err != nil {
		return fmt.Errorf("reading the chain's block delay: %w", err)
	}
	s.StatusMaxAge = time.Duration(v.BlockDelay) * time.Second / 2
	n.MinerAPI, n.remote = c, s
	n.marketSealer, n.localPieces = remoteSealer{s}, pieceSource(s)
	n.logf("sealing: pieces go to lotus-miner at %s (miner %s, %s sectors)", c.URL(), n.Miner, n.sectorSize.ShortString())
	return nil
}

// remoteSealer is the market's sealer when the sectors are lotus-miner's:
// minerapi's Sealer, with a miner that cannot be reached told to the
// market as market.ErrSealerUnavailable, which its steps wait out instead
// of giving up on the deal.
type remoteSealer struct{ s *minerapi.Sealer }

var _ market.Sealer = remoteSealer{}

func (r remoteSealer) AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d sealing.Deal) (sealing.Placement, error) {
	pl, err := r.s.AddPieceToAny(ctx, size, data, d)
	return pl, sealerError(err)
}

func (r remoteSealer) SectorStatus(ctx context.Context, dealUUID uuid.UUID) (sealing.DealSectorStatus, error) {
	st, err := r.s.SectorStatus(ctx, dealUUID)
	return st, sealerError(err)
}

// sealerError marks an error of a lotus-miner that cannot be reached as
// the market's ErrSealerUnavailable.
func sealerError(err error) error {
	if errors.Is(err, minerapi.ErrUnavailable) {
		return fmt.Errorf("%w: %w", market.ErrSealerUnavailable, err)
	}
	return err
}

// hasUnsealedCopy reports whether a piece can be read from an unsealed
// copy, ferryd's or lotus-miner's; it starts no unseal.
func (n *Node) hasUnsealedCopy(ctx context.Context, pieceCid cid.Cid) (bool, error) {
	var r sealing.PieceReader
	var err error
	if n.remote != nil {
		r, err = n.remote.OpenUnsealed(ctx, pieceCid)
	} else {
		r, err = n.Sealing.ReadPiece(ctx, pieceCid)
	}
	if errors.Is(err, sealing.ErrNoUnsealedCopy) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.Close()
	return true, nil
}

// startMinerAPI serves lotus-miner's API over ferryd's sealing on
// Sealing.MinerAPIListen, for a market elsewhere (a market-only ferryd, or
// Boost): tokens of its own secret, admin for writes, as lotus-miner's.
func (n *Node) startMinerAPI(ctx context.Context) error {
	c := n.Config.Sealing
	if c.MinerAPIListen == "" {
		return nil
	}
	var err error
	if n.minerSecret, err = n.Repo.MinerAPISecret(); err != nil {
		return err
	}
	l, err := listen(c.MinerAPIListen, "lotus-miner API")
	if err != nil {
		return err
	}
	base := c.MinerAPIPublicURL
	if base == "" {
		base = "http://" + l.Addr().String() // the port chosen, for a listen address with port 0
	}
	base = strings.TrimSuffix(base, "/")
	secret := n.minerSecret
	srv, err := minerapi.NewServer(minerapi.ServerConfig{
		Miner:      n.Miner,
		SectorSize: n.sectorSize,
		RemoteURL:  base + "/remote",
		Verify:     func(_ context.Context, token string) ([]auth.Permission, error) { return auth.Verify(secret, token) },
		Version:    build.Version,
	}, n.Sealing)
	if err != nil {
		l.Close()
		return err
	}
	n.closers = append(n.closers, func() error { srv.Close(); return nil })
	n.serveOn(l, srv, "lotus-miner API")
	m, err := ipni.HTTPMultiaddr(base)
	if err != nil {
		return fmt.Errorf("the lotus-miner API's address: %w", err)
	}
	n.minerAPIAddr, n.minerAPIURL = m.String(), base+minerapi.APIPath
	n.logf("sealing: lotus-miner's API at %s%s (ferryd auth api-info --miner --perm admin)", base, minerapi.APIPath)
	return nil
}

// minerAuthNew mints a token for the lotus-miner API ferryd serves.
func (n *Node) minerAuthNew(perms []auth.Permission) (string, error) {
	if n.minerSecret == nil {
		return "", errors.New("this ferryd serves no lotus-miner API (it needs Subsystems.EnableSealing and Sealing.MinerAPIListen)")
	}
	return auth.Mint(n.minerSecret, perms...)
}

// sectorInfo is a sector of lotus-miner as `ferryd sectors` shows ferryd's
// own: the pieces at the offsets their order gives (lotus-miner lists
// written pieces only). What SectorsStatus does not tell (the times, the
// pre-commit epoch, whether an unsealed copy exists) stays zero.
func sectorInfo(si minerapi.SectorInfo, ssize abi.SectorSize) sealing.SectorInfo {
	out := sealing.SectorInfo{
		Number:       si.SectorID,
		State:        si.State,
		SealProof:    si.SealProof,
		SectorSize:   ssize,
		TicketEpoch:  si.Ticket.Epoch,
		SeedEpoch:    si.Seed.Epoch,
		CommD:        si.CommD,
		CommR:        si.CommR,
		PreCommitMsg: si.PreCommitMsg,
		CommitMsg:    si.CommitMsg,
		Retries:      int(min(si.Retries, 1<<31-1)),
		LastError:    si.LastErr,
		Pieces:       []sealing.SectorPiece{},
	}
	var off abi.PaddedPieceSize
	for _, p := range si.Pieces {
		sp := sealing.SectorPiece{Offset: off, Size: p.Piece.Size, PieceCID: p.Piece.PieceCID, Written: true, Filler: p.DealInfo == nil}
		if d := p.DealInfo; d != nil {
			sp.DealID, sp.PublishCid, sp.Proposal, sp.Manifest = d.DealID, d.PublishCid, d.DealProposal, d.PieceActivationManifest
			sp.Direct = d.PieceActivationManifest != nil
			sp.StartEpoch, sp.EndEpoch, sp.KeepUnsealed = d.DealSchedule.StartEpoch, d.DealSchedule.EndEpoch, d.KeepUnsealed
			out.Deals++
		}
		off += p.Piece.Size
		out.Pieces = append(out.Pieces, sp)
	}
	out.Used = off
	return out
}

// MinerAPIURL is the URL of the lotus-miner API this ferryd serves (with
// the port chosen when Sealing.MinerAPIListen names port 0), or "" when it
// serves none.
func (n *Node) MinerAPIURL() string { return n.minerAPIURL }
