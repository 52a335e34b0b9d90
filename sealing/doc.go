// Package sealing is Ferry's sealing intake: it places deal pieces into
// sectors as lotus-miner does (AddPieceToAny), writes them fr32-padded into
// unsealed sector files in Lotus' layout while computing their piece
// commitment in the same pass, and drives each sector through its states
// (WaitDeals ⇄ AddPiece → Packing → PreCommit1 → PreCommit2 →
// SubmitPreCommit → WaitSeed → Committing → SubmitCommit → FinalizeSector →
// Proving) with a Sealer back end and a chain.Node.
//
// The database is the truth: a placement is recorded as an intent before any
// byte is written and marked done only after the bytes are synced, every
// sector step reads its row, does idempotent work and records the next
// state, and chain messages are recorded before they are waited on, so a
// process killed at any point resumes without placing a piece twice or
// sending a second pre-commit.
//
// The unsealed sector file is Lotus' partial file: the sector's fr32-padded
// bytes, then an RLE+ bitfield of the allocated padded bytes, then the
// bitfield's length as a little-endian uint32. Files are sparse: unallocated
// ranges are holes.
package sealing
