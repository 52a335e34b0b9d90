package sealing

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/internal/iocount"
	"github.com/ferry-fil/ferry/piece"
)

// DevnetSealer is the Sealer for Ferry's devnet, whose miner actor checks
// CommD against the deals but verifies no proofs. It computes the real CommD
// by hashing the sector's unsealed file and checks it against the pieces'.
// Its CommR is NOT a replica commitment: it is a valid sealed-commitment CID
// over a hash of CommD, the miner and the sector number, and its proof is
// filler bytes of the proof type's size. Neither proves replication; use it
// only with a chain that does not verify seal proofs.
type DevnetSealer struct{}

// NewDevnetSealer returns the devnet back end.
func NewDevnetSealer() *DevnetSealer { return &DevnetSealer{} }

// PreCommit computes CommD from the unsealed file and a placeholder CommR.
func (DevnetSealer) PreCommit(ctx context.Context, s SectorRef, ticket abi.SealRandomness, pieces []abi.PieceInfo) (SectorCids, error) {
	ss, err := s.ProofType.SectorSize()
	if err != nil {
		return SectorCids{}, fmt.Errorf("sector %d: %w", s.Number, err)
	}
	want, err := piece.CommD(abi.PaddedPieceSize(ss), pieces)
	if err != nil {
		return SectorCids{}, fmt.Errorf("sector %d: CommD of pieces: %w", s.Number, err)
	}
	f, err := os.Open(s.UnsealedPath)
	if err != nil {
		return SectorCids{}, fmt.Errorf("sector %d: opening unsealed file: %w", s.Number, err)
	}
	defer f.Close()
	// The tree over the file's padded bytes: unpad and let Calc pad again,
	// which is the identity on valid fr32 data.
	calc := piece.NewCalc()
	r := iocount.ContextReader{Ctx: ctx, R: piece.NewUnpadReader(io.NewSectionReader(f, 0, int64(ss)))}
	if _, err := io.CopyBuffer(calc, r, make([]byte, 1<<20)); err != nil {
		calc.Sum()
		return SectorCids{}, fmt.Errorf("sector %d: reading unsealed file: %w", s.Number, err)
	}
	comm, err := calc.SumAs(abi.PaddedPieceSize(ss))
	if err != nil {
		return SectorCids{}, fmt.Errorf("sector %d: hashing unsealed file: %w", s.Number, err)
	}
	got := piece.CIDv1(comm.Root)
	if !got.Equals(want) {
		return SectorCids{}, fmt.Errorf("sector %d: unsealed file has CommD %s, its pieces make %s", s.Number, got, want)
	}
	h := sha256.New()
	h.Write([]byte("ferry devnet placeholder CommR, not a replica commitment"))
	h.Write(comm.Root[:])
	binary.Write(h, binary.BigEndian, uint64(s.Miner))
	binary.Write(h, binary.BigEndian, uint64(s.Number))
	d := h.Sum(nil)
	d[31] &= 0x3F
	commR, err := commcid.ReplicaCommitmentV1ToCID(d)
	if err != nil {
		return SectorCids{}, fmt.Errorf("sector %d: CommR CID: %w", s.Number, err)
	}
	return SectorCids{Unsealed: want, Sealed: commR}, nil
}

// Commit returns placeholder proof bytes of the proof type's size.
func (DevnetSealer) Commit(ctx context.Context, s SectorRef, ticket abi.SealRandomness, seed abi.InteractiveSealRandomness, pieces []abi.PieceInfo, cids SectorCids) ([]byte, error) {
	n, err := s.ProofType.ProofSize()
	if err != nil {
		return nil, fmt.Errorf("sector %d: %w", s.Number, err)
	}
	out := make([]byte, 0, n)
	block := sha256.Sum256(append([]byte("ferry devnet placeholder proof, not a proof of replication"), cids.Sealed.Bytes()...))
	for uint64(len(out)) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n], nil
}
