// Package wire holds the messages of the Boost-compatible storage-deal
// protocols and their protocol IDs.
//
// The 1.2.x storage messages, the ask messages and the transports response
// are CBOR maps keyed by the Go field names, as cbor-gen's map encoding
// writes them (keys sorted shorter first, then bytewise). Decoders skip keys
// they do not know and leave missing keys at their zero values, which is
// what lets one handler serve /fil/storage/mk/1.2.0 and 1.2.1. The generated
// code lives in types_cbor_gen.go; regenerate it with `go run ./gen`.
//
// Every message crosses the wire as one bare CBOR object per direction, with
// no length prefix; Read bounds what a peer can make us read.
package wire

import (
	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
)

// Protocol IDs of the deal protocols, as Boost registers them.
const (
	// DealProtocolv121 is the storage deal proposal protocol (DealParams →
	// DealResponse) with RemoveUnsealedCopy and SkipIPNIAnnounce.
	DealProtocolv121 = "/fil/storage/mk/1.2.1"
	// DealProtocolv120 is the previous deal proposal protocol; its messages
	// lack the two 1.2.1 fields and decode into the same types.
	DealProtocolv120 = "/fil/storage/mk/1.2.0"
	// DealStatusProtocol is the deal status protocol (DealStatusRequest →
	// DealStatusResponse).
	DealStatusProtocol = "/fil/storage/status/1.2.0"
	// AskProtocol is the storage ask protocol (AskRequest → AskResponse).
	AskProtocol = "/fil/storage/ask/1.1.0"
	// TransportsProtocol is the retrieval transports query (no request →
	// QueryResponse).
	TransportsProtocol = "/fil/retrieval/transports/1.0.0"
)

// Transfer types a DealParams.Transfer may carry.
const (
	// TransferHTTP pulls the data from an http(s) URL.
	TransferHTTP = "http"
	// TransferLibp2p pulls the data over HTTP on a libp2p stream; the URL is
	// "libp2p:///ip4/…/p2p/<id>".
	TransferLibp2p = "libp2p"
)

// DealParams is a storage deal proposal as a client sends it.
type DealParams struct {
	// DealUUID is the client-chosen identifier of the deal.
	DealUUID uuid.UUID
	// IsOffline is true when the data will be imported by the provider's
	// operator instead of transferred.
	IsOffline bool
	// ClientDealProposal is the deal proposal with the client's signature.
	ClientDealProposal market.ClientDealProposal
	// DealDataRoot is the root CID of the deal's payload (the CAR root).
	DealDataRoot cid.Cid
	// Transfer says how to fetch the data; zero for offline deals.
	Transfer Transfer
	// RemoveUnsealedCopy asks the provider not to keep an unsealed copy
	// (1.2.1).
	RemoveUnsealedCopy bool
	// SkipIPNIAnnounce asks the provider not to announce the deal to IPNI
	// (1.2.1).
	SkipIPNIAnnounce bool
}

// Transfer describes how the provider fetches a deal's data.
type Transfer struct {
	// Type is "http" or "libp2p".
	Type string
	// ClientID is an optional client-chosen identifier of the transfer.
	ClientID string
	// Params is transfer-type specific; for http and libp2p it is the JSON
	// of an HTTPRequest.
	Params []byte
	// Size is the number of bytes to transfer.
	Size uint64
}

// HTTPRequest is the JSON carried in Transfer.Params for http and libp2p
// transfers: {"URL": "...", "Headers": {"k": "v"}}.
type HTTPRequest struct {
	// URL is the http(s) or libp2p URL of the data.
	URL string
	// Headers are sent with every request for the data.
	Headers map[string]string
}

// DealResponse answers a DealParams.
type DealResponse struct {
	// Accepted is true when the provider accepted the deal.
	Accepted bool
	// Message is the rejection reason; empty when accepted.
	Message string
}

// DealStatusRequest asks for the status of a deal. Signature is the
// client's signature over the 16 bytes of DealUUID.
type DealStatusRequest struct {
	// DealUUID identifies the deal.
	DealUUID uuid.UUID
	// Signature is made by the deal's client wallet over the raw UUID.
	Signature crypto.Signature
}

// DealStatusResponse answers a DealStatusRequest.
type DealStatusResponse struct {
	// DealUUID echoes the request.
	DealUUID uuid.UUID
	// Error is set when the status could not be given (unknown deal, bad
	// signature).
	Error string
	// DealStatus is the deal's state; nil when Error is set.
	DealStatus *DealStatus
	// IsOffline is true for offline deals.
	IsOffline bool
	// TransferSize is the number of bytes the transfer will move.
	TransferSize uint64
	// NBytesReceived is the number of bytes received so far.
	NBytesReceived uint64
}

// DealStatus is the provider's view of a deal.
type DealStatus struct {
	// Error is set when the deal failed or is waiting for a retry.
	Error string
	// Status is the name of the deal's last checkpoint.
	Status string
	// SealingStatus is the state of the sector holding the deal.
	SealingStatus string
	// Proposal is the deal proposal.
	Proposal market.DealProposal
	// SignedProposalCid is the CID of the ClientDealProposal.
	SignedProposalCid cid.Cid
	// PublishCid is the CID of the PublishStorageDeals message, once sent.
	PublishCid *cid.Cid
	// ChainDealID is the deal's ID on chain, once published.
	ChainDealID abi.DealID
}

// StorageAsk is a provider's price and piece-size bounds.
type StorageAsk struct {
	// Price is in attoFIL per GiB per epoch.
	Price abi.TokenAmount
	// VerifiedPrice is the price for verified deals, in attoFIL per GiB per
	// epoch.
	VerifiedPrice abi.TokenAmount
	// MinPieceSize is the smallest padded piece accepted.
	MinPieceSize abi.PaddedPieceSize
	// MaxPieceSize is the largest padded piece accepted.
	MaxPieceSize abi.PaddedPieceSize
	// Miner is the provider's miner actor.
	Miner address.Address
	// Timestamp is the epoch the ask was made at.
	Timestamp abi.ChainEpoch
	// Expiry is the epoch after which the ask is no longer valid.
	Expiry abi.ChainEpoch
	// SeqNo increases with every new ask.
	SeqNo uint64
}

// SignedStorageAsk is an ask with the miner worker's signature over the
// CBOR of Ask.
type SignedStorageAsk struct {
	// Ask is the ask.
	Ask *StorageAsk
	// Signature is the worker key's signature over CBOR(Ask).
	Signature *crypto.Signature
}

// AskRequest asks a provider for its current ask.
type AskRequest struct {
	// Miner is the miner actor whose ask is wanted.
	Miner address.Address
}

// AskResponse answers an AskRequest.
type AskResponse struct {
	// Ask is the signed ask, nil when the provider has none for Miner.
	Ask *SignedStorageAsk
}

// QueryResponse answers the retrieval transports query.
type QueryResponse struct {
	// Protocols are the retrieval transports the provider serves.
	Protocols []Protocol
}

// Protocol is one retrieval transport and where it is served.
type Protocol struct {
	// Name is the transport's name, e.g. "http" or "libp2p".
	Name string
	// Addresses are the binary forms of the transport's multiaddrs; see
	// NewProtocol and Protocol.Multiaddrs.
	Addresses [][]byte
}
