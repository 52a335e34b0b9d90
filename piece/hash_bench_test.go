package piece

import "testing"

// BenchmarkHashChunk measures hashing one full 1 MiB chunk to its root.
func BenchmarkHashChunk(b *testing.B) {
	ch := newChunk(true)
	copy(ch.data, randBytes(1, chunkP))
	b.SetBytes(chunkP)
	for b.Loop() {
		hashFull(ch)
	}
}
