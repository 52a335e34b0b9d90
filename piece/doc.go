// Package piece holds Filecoin piece arithmetic: padded and unpadded sizes,
// Fr32 padding, piece commitments (CommP) and their CIDs, zero commitments,
// filler pieces and the unsealed sector commitment (CommD).
//
// # Small payloads
//
// A piece holds at least 127 payload bytes (128 padded bytes). go-fil-commp-hashhash
// refuses payloads under 65 bytes; Lotus and filecoin-ffi pad any payload up to
// 127 bytes with zeros. Ferry follows Lotus: any payload of one byte or more is
// accepted, zero-filled to the smallest valid piece (128 padded bytes at least),
// and its commitment is that of the zero-filled piece. For payloads of 65 bytes
// and more the result is identical to go-fil-commp-hashhash. An empty payload is
// refused with ErrEmptyPayload: it has no data to commit to and providers reject
// it. (The commitment of an all-zero piece is ZeroCommitment.)
//
// # Speed
//
// Calc pads on the writing goroutine and hashes aligned subtrees of the piece on
// runtime.GOMAXPROCS worker goroutines with SHA-NI/AVX (gohashtree), so memory
// stays at a few MiB per core whatever the piece size. All-zero subtrees, such as
// the fill up to a declared piece size, cost one table lookup each.
package piece
