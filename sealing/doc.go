// Package sealing is Ferry's sealing intake: it places deal pieces into
// sectors as lotus-miner does (AddPieceToAny), writes them fr32-padded into
// unsealed sector files in Lotus' storage layout while computing their piece
// commitment in the same pass, and drives each sector through its states
// with a Sealer back end, a Chain to read and a MessageSender for the
// pre-commit and prove-commit.
//
// # States
//
// Sector states have lotus-miner's names (SectorState). The deal path:
//
//	WaitDeals ⇄ AddPiece → Packing → PreCommit1 → PreCommit2 →
//	SubmitPreCommitBatch → PreCommitBatchWait → WaitSeed → Committing →
//	SubmitCommit → CommitWait → FinalizeSector → Proving
//
// WaitDeals, AddPiece and AddPieceFailed take new pieces. A sector packs
// when it is full, holds Lotus' deal limit, has waited WaitDealsDelay, or
// one of its deals' start epoch minus StartEpochSealingBuffer is reached;
// Packing fills the rest with zero pieces. PreCommit1 picks the ticket,
// PreCommit2 has the Sealer compute CommD and CommR (CommD checked against
// the one the chain computes from the deals), SubmitPreCommitBatch sends a
// PreCommitSectorBatch2 through the worker's MessageSender and
// PreCommitBatchWait waits for it (MessageConfidence epochs, in a goroutine
// of its own so no other sector waits; the sender pushes it again when it
// has to), WaitSeed waits PreCommitChallengeDelay, Committing has the Sealer
// prove, SubmitCommit sends the ProveCommitSector (ProveCommitSectors3 for
// a sector holding a direct piece) and CommitWait waits until
// the sector is proven; FinalizeSector drops the unsealed copy unless a deal
// keeps it.
//
// # Direct pieces and the sector's expiration
//
// A Deal is either a published storage market deal or a piece onboarded
// directly (FIP-0076), with the PieceActivationManifest it is proven with
// (Lotus' PieceDealInfo has the same shape). Sectors may mix the two. A
// sector that holds a direct piece is pre-committed with
// PreCommitSectorBatch2 without deal IDs (its unsealed CID declared) and
// proven with ProveCommitSectors3 and the manifest of each of its pieces in
// order: a direct piece's own (its verified allocation is claimed), a
// market deal's piece with a notification to the market actor naming the
// deal (and, for a verified deal, the allocation the deal made at publish,
// which is claimed), and each filler with its CID and size alone; activation
// and notifications are required to succeed. Other sectors are
// pre-committed with their deal IDs and proven with ProveCommitSector.
//
// The sector's expiration is the earliest that satisfies the miner actor
// (MinSectorExpiration after the latest activation its pre-commit allows)
// and every deal in it (not before its end: a market deal's EndEpoch, a
// direct piece's start + TermMin), and it must leave the sector living no
// longer after activation than the shortest TermMax of the allocations its
// pieces claim (a verified market deal's is its duration + 90 days).
// AddPieceToAny reads each piece's allocation from the chain (it must be
// this miner's, for this piece) and places a piece only in a sector where
// these bounds still meet; a piece no sector could hold is refused with
// ErrCannotSeal.
//
// Failures go to SealPreCommit1Failed, PreCommitFailed, ComputeProofFailed
// or CommitFailed, which retry after RetryDelay (looking at the chain first)
// and stop in FailedUnrecoverable after MaxRetries. One table
// (sectorStates) names every state with its handler, whether it takes
// pieces and whether it is proving; Run's dispatch, the open-sector query,
// the sealing count of MaxSealingSectorsForDeals and SectorCounts read it.
//
// # Packing
//
// A piece goes to the open sector that needs the least filler padding before
// it (then the oldest), as lotus-miner's updateInput chooses, whether or not
// another piece is being written there; a new sector is opened only when no
// open one has room, bounded by MaxWaitDealsSectors and
// MaxSealingSectorsForDeals, and otherwise the call waits for room. Its
// placement is reserved in the database first: a row at the next offset
// that is a multiple of the piece's size after everything placed in the
// sector, with the zero fillers that align it. That is where the chain
// expects the piece, since the chain computes CommD from the sector's deals
// alone, each after the one before at the next multiple of its size.
//
// Writes into one sector take turns in offset order: a reservation is
// written once every one before it is written. Sectors are written in
// parallel (up to AddPieceConcurrency writes). A placement is reported to
// the caller only once its bytes are synced, its commitment matched the
// deal's PieceCID, the trailer lists it and its row is marked done; from the
// start of its write on its offset never changes.
//
// A write that fails (data that does not match, a reader error, a full
// disk, a caller that gives up while waiting) has its range zeroed and its
// reservation withdrawn, and the reservations behind it, none of which is
// written yet, move down to where the chain will now expect them. Keeping
// the failed range and recording zero fillers in its place would keep the
// tree over the file exact, but not the CommD the chain computes from the
// deals: a filler is not a deal, so the chain would place the next deal
// where the filler is. Taking turns is what makes every failure the first
// unwritten piece of its sector, so nothing written ever has to move. The
// failed deal, retried, is placed anew.
//
// # Crash safety
//
// The database is the truth. A reservation is recorded before any byte is
// written and marked done only after the bytes and the trailer are synced,
// every sector step reads its row, does idempotent work and records the
// next state, and a chain message's id is recorded before it is sent and its
// CID right after, so a process killed at any point resumes without placing
// a piece twice or sending a second pre-commit. After a crash, a deal whose
// write was cut short is written again at its reservation when it comes
// back. Reservations whose deal has not come back are zeroed and withdrawn
// when a deal behind them takes its turn or when the sector packs (the ones
// behind move up); such a deal, if it comes back later, is placed anew.
//
// # Storage layout
//
// Config.Dir is a Lotus storage path, one lotus-miner could attach: it holds
// sectorstore.json (Lotus' LocalStorageMeta, written at first start with a
// new ID, Weight 10, CanSeal and CanStore), and unsealed/, sealed/ and
// cache/ with each sector's files named s-t0<miner>-<number>. Files of
// Ferry's first layout (unsealed/<number>) are renamed at start, each
// rename atomic, so a start killed half way is finished by the next one.
//
// The unsealed sector file is Lotus' partial file: the sector's fr32-padded
// bytes, then an RLE+ bitfield of the allocated padded bytes (written pieces
// and their fillers), then the bitfield's length as a little-endian uint32.
// Files are sparse: unallocated ranges are holes.
package sealing
