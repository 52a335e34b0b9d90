// Package mk20 holds the messages of Curio's Market 2.0 deal API ("mk20",
// curio v1.28.4 market/mk20), which httpdeal serves and the client speaks:
// the JSON types with Curio's field names, their validation, the deal
// codes and states, and the CurioAuth request signature.
//
// # Deals
//
// A Deal names its client (a Filecoin address), an identifier (a ULID the
// client chooses), the data (a DataSource: the piece CID v2, its format and
// where the provider gets it) and the products wanted. Ferry takes the
// ddo_v1 product (direct data onboarding) with retrieval_v1, and the
// sources http (the provider downloads from up to MaxURLs URLs), offline
// (the operator imports the data) and put (the client uploads it).
// pdp_v1 is answered ErrUnsupportedProduct and the aggregate source and
// format ErrUnsupportedDataSource, the codes Curio gives a product or source
// it does not offer.
//
// Validate checks a deal on its own, in Curio's order and with its codes:
// the client is the address that signed the request; exactly one of
// ddo_v1 and pdp_v1; ddo_v1 names a provider, a positive start epoch if
// any, an allocation other than NoAllocationID if any, a duration of at
// least MinDuration without one (ErrDurationTooShort otherwise), a market
// address of 0x and 40 hex digits if any, and a notification payload
// exactly when a notification address; ddo_v1 needs retrieval_v1 with
// announce_piece false, and announce_payload needs indexing. The data,
// when present: a piece CID v2 (codec raw, multihash
// fr32-sha256-trunc254-padbintree, convertible to v1, payload > 0, in the
// smallest tree that holds it: piece.ParseCIDv2Strict), one source, one
// format, and for http at least one and at most MaxURLs URLs of at most
// MaxHeaders headers each. What needs the chain (the provider is this
// miner, the allocation matches, the start epoch leaves time to seal) is
// the server's to check.
//
// # Authentication
//
// Every request carries
//
//	Authorization: CurioAuth <key type>:<base64(address bytes)>:<base64(signature bytes)>
//
// with key type secp256k1, bls or delegated, and the signature (type byte
// then data, crypto.Signature.MarshalBinary) over SHA-256 of the address
// bytes, the upper-case method, the escaped URL path and the UTC time
// truncated to the minute in RFC 3339, joined without separators. The body
// and the query are not signed. VerifyAuth accepts the current, previous
// and next minute, as Curio does. Ferry's wallet verifies secp256k1 and BLS
// signatures; delegated (f4) signers are refused.
package mk20
