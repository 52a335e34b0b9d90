// Package interop tests Ferry against other projects' own code: here,
// lotus-miner's API hand-off (package minerapi) against Lotus' lib/rpcenc
// client and server, Lotus' storiface and piece types, and the storage
// path ferryd's sealing writes (sectorstore.json, sector file names, the
// unsealed files) against Lotus' storiface, partialfile and fr32. It is a
// module of its own so that the main module never requires Lotus (see
// HACKING.md).
package interop
