package mk20

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/ipfs/go-cid"
	"github.com/oklog/ulid/v2"
)

// Deal is an mk20 deal proposal.
type Deal struct {
	// Identifier is the deal's ULID, chosen by the client.
	Identifier ulid.ULID `json:"identifier"`
	// Client is the client's address; it must be the request's signer.
	Client string `json:"client"`
	// Data is the piece and where it comes from; a deal may get it later
	// (POST /update, or with the upload's finalize).
	Data *DataSource `json:"data,omitempty"`
	// Products are what the client asks for.
	Products Products `json:"products"`
}

// Products are the products of a deal.
type Products struct {
	// DDOV1 onboards the piece into a sector directly (FIP-0076).
	DDOV1 *DDOV1 `json:"ddo_v1,omitempty"`
	// RetrievalV1 says how the piece is indexed and announced.
	RetrievalV1 *RetrievalV1 `json:"retrieval_v1,omitempty"`
	// PDPV1 is proof of data possession, which Ferry does not offer.
	PDPV1 *PDPV1 `json:"pdp_v1,omitempty"`
}

// DataSource is the piece of a deal and where the provider gets it: exactly
// one of the Source fields is set.
type DataSource struct {
	// PieceCID is the piece CID v2 (FRC-0069), as {"/": "bafkzcib…"}.
	PieceCID cid.Cid `json:"piece_cid"`
	// Format is what the piece holds.
	Format PieceDataFormat `json:"format"`
	// SourceHTTP: the provider downloads the piece's payload.
	SourceHTTP *DataSourceHTTP `json:"source_http,omitempty"`
	// SourceAggregate: the piece is assembled from other pieces (not
	// offered by Ferry).
	SourceAggregate *DataSourceAggregate `json:"source_aggregate,omitempty"`
	// SourceOffline: the provider's operator imports the data.
	SourceOffline *DataSourceOffline `json:"source_offline,omitempty"`
	// SourceHTTPPut: the client uploads the data after the deal is
	// accepted.
	SourceHTTPPut *DataSourceHTTPPut `json:"source_http_put,omitempty"`
}

// PieceDataFormat is what a piece holds: exactly one field is set.
type PieceDataFormat struct {
	// Car is a CAR file.
	Car *FormatCar `json:"car,omitempty"`
	// Aggregate is an FRC-0058 aggregate of pieces (not offered by Ferry).
	Aggregate *FormatAggregate `json:"aggregate,omitempty"`
	// Raw is bytes of no known format (not indexed).
	Raw *FormatBytes `json:"raw,omitempty"`
}

// FormatCar marks a CAR file.
type FormatCar struct{}

// FormatBytes marks raw bytes.
type FormatBytes struct{}

// AggregateType is the kind of an aggregate; AggregateTypeV1 is FRC-0058.
type AggregateType int

// Aggregate types.
const (
	AggregateTypeNone AggregateType = iota
	AggregateTypeV1
)

// FormatAggregate describes an aggregate piece.
type FormatAggregate struct {
	// Type is the aggregate's kind.
	Type AggregateType `json:"type"`
	// Sub are the pieces inside, in segment order.
	Sub []DataSource `json:"sub"`
}

// DataSourceOffline is the offline source.
type DataSourceOffline struct{}

// DataSourceHTTPPut is the upload source.
type DataSourceHTTPPut struct{}

// DataSourceAggregate lists the pieces an aggregate is made of.
type DataSourceAggregate struct {
	// Pieces are the sub-pieces and their sources.
	Pieces []DataSource `json:"pieces"`
}

// DataSourceHTTP lists where the payload can be downloaded.
type DataSourceHTTP struct {
	// URLs are tried by priority, lowest first.
	URLs []HTTPURL `json:"urls"`
}

// HTTPURL is one download location.
type HTTPURL struct {
	// URL is an http or https URL of the payload.
	URL string `json:"url"`
	// Headers are sent with the download.
	Headers http.Header `json:"headers"`
	// Priority orders the URLs: lower first.
	Priority int `json:"priority"`
	// Fallback marks a URL used only when the others fail.
	Fallback bool `json:"fallback"`
}

// DDOV1 is the direct data onboarding product.
type DDOV1 struct {
	// Provider is the miner that onboards the piece.
	Provider address.Address `json:"provider"`
	// StartEpoch, if set, is the epoch by which the piece must be in a
	// proven sector.
	StartEpoch *abi.ChainEpoch `json:"start_epoch"`
	// Duration is the deal's length in epochs (at least MinDuration
	// without an allocation).
	Duration abi.ChainEpoch `json:"duration"`
	// AllocationID names the client's verified allocation for the piece.
	AllocationID *verifreg.AllocationId `json:"allocation_id,omitempty"`
	// MarketAddress is an FEVM market contract (0x…) governing the deal.
	MarketAddress string `json:"market_address"`
	// MarketDealID is the deal's ID in the market contract.
	MarketDealID *uint64 `json:"market_deal_id"`
	// NotificationAddress is told when the sector is activated.
	NotificationAddress address.Address `json:"notification_address"`
	// NotificationPayload is sent with the notification.
	NotificationPayload []byte `json:"notification_payload,omitempty"`
}

// RetrievalV1 is the retrieval product.
type RetrievalV1 struct {
	// Indexing asks for the payload's blocks to be indexed.
	Indexing bool `json:"indexing"`
	// AnnouncePayload asks for the payload's blocks to be announced to
	// IPNI; it needs Indexing.
	AnnouncePayload bool `json:"announce_payload"`
	// AnnouncePiece asks for the piece to be announced to IPNI (not with
	// ddo_v1).
	AnnouncePiece bool `json:"announce_piece"`
}

// PDPV1 is Curio's proof of data possession product, declared so that a
// request naming it decodes and gets ErrUnsupportedProduct.
type PDPV1 struct {
	CreateDataSet bool     `json:"create_data_set"`
	DeleteDataSet bool     `json:"delete_data_set"`
	AddPiece      bool     `json:"add_piece"`
	DeletePiece   bool     `json:"delete_piece"`
	DataSetID     *uint64  `json:"data_set_id,omitempty"`
	RecordKeeper  string   `json:"record_keeper"`
	PieceIDs      []uint64 `json:"piece_ids,omitempty"`
	ExtraData     []byte   `json:"extra_data,omitempty"`
}

// ProductName names a product.
type ProductName string

// Products.
const (
	ProductDDOV1       ProductName = "ddo_v1"
	ProductPDPV1       ProductName = "pdp_v1"
	ProductRetrievalV1 ProductName = "retrieval_v1"
)

// SourceName names a data source.
type SourceName string

// Data sources.
const (
	SourceHTTP      SourceName = "http"
	SourceAggregate SourceName = "aggregate"
	SourceOffline   SourceName = "offline"
	SourcePut       SourceName = "put"
)

// Source returns the name of the source a data source sets, or "" when it
// sets none (several: the first in the order of the fields).
func (d *DataSource) Source() SourceName {
	switch {
	case d.SourceHTTP != nil:
		return SourceHTTP
	case d.SourceAggregate != nil:
		return SourceAggregate
	case d.SourceOffline != nil:
		return SourceOffline
	case d.SourceHTTPPut != nil:
		return SourcePut
	}
	return ""
}

// SupportedProducts lists what Ferry offers, as GET /products answers.
func SupportedProducts() []ProductName { return []ProductName{ProductDDOV1, ProductRetrievalV1} }

// SupportedSources lists the data sources Ferry takes, as GET /sources
// answers.
func SupportedSources() []SourceName { return []SourceName{SourceHTTP, SourceOffline, SourcePut} }

// ProductList is the answer of GET /products.
type ProductList struct {
	Products []ProductName `json:"products"`
}

// SourceList is the answer of GET /sources.
type SourceList struct {
	Sources []SourceName `json:"sources"`
}

// ContractList is the answer of GET /contracts: the FEVM market contracts
// the provider works with.
type ContractList struct {
	Contracts []string `json:"contracts"`
}

// StartUpload is the body of POST /uploads/{id}.
type StartUpload struct {
	// RawSize is the payload's size in bytes; it must be the piece CID's.
	RawSize uint64 `json:"raw_size"`
	// ChunkSize is the size of every chunk but the last: a power of two
	// from MinChunkSize to MaxChunkSize.
	ChunkSize int64 `json:"chunk_size"`
}

// UploadStatus is the answer of GET /uploads/{id}. Chunks are numbered
// from 1.
type UploadStatus struct {
	TotalChunks    int   `json:"total_chunks"`
	Uploaded       int   `json:"uploaded"`
	Missing        int   `json:"missing"`
	UploadedChunks []int `json:"uploaded_chunks"`
	MissingChunks  []int `json:"missing_chunks"`
}

// State is where a deal is, in Curio's words.
type State string

// Deal states.
const (
	StateAccepted   State = "accepted"   // accepted, waiting for its data
	StateUploading  State = "uploading"  // waiting for the client's upload
	StateProcessing State = "processing" // data arriving or being checked
	StateSealing    State = "sealing"    // in a sector being sealed
	StateIndexing   State = "indexing"   // being indexed and announced
	StateComplete   State = "complete"   // in a proven sector
	StateFailed     State = "failed"     // given up; ErrorMsg says why
)

// StatusResponse is one product's status.
type StatusResponse struct {
	State    State  `json:"status"`
	ErrorMsg string `json:"errorMsg"`
}

// ProductStatus is the answer of GET /status/{id}.
type ProductStatus struct {
	DDOV1 *StatusResponse `json:"ddo_v1,omitempty"`
	PDPV1 *StatusResponse `json:"pdp_v1,omitempty"`
}

// MaxBodySize is the largest JSON body the API reads, Curio's 1 MiB.
const MaxBodySize = 1 << 20

// DecodeDeal decodes a deal from JSON. It refuses bytes after the object.
func DecodeDeal(b []byte) (*Deal, error) {
	if len(b) > MaxBodySize {
		return nil, fmt.Errorf("decoding deal: %d bytes, more than the %d-byte limit", len(b), MaxBodySize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d Deal
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decoding deal: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decoding deal: data after the JSON object")
	}
	return &d, nil
}
