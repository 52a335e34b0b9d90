package mk20

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/ipfs/go-cid"
	"golang.org/x/net/http/httpguts"

	"github.com/ferry-fil/ferry/piece"
)

// DealCode is the HTTP status of an answer about a deal, Curio's codes.
type DealCode int

// Deal codes.
const (
	Ok                         DealCode = 200
	ErrBadProposal             DealCode = 400
	ErrUnAuthorized            DealCode = 401
	ErrDealNotFound            DealCode = 404
	ErrUnsupportedDataSource   DealCode = 422
	ErrUnsupportedProduct      DealCode = 423
	ErrProductNotEnabled       DealCode = 424
	ErrProductValidationFailed DealCode = 425
	ErrDealRejectedByMarket    DealCode = 426
	ErrServiceOverloaded       DealCode = 429
	ErrMalformedDataSource     DealCode = 430
	ErrMarketNotEnabled        DealCode = 440
	ErrDurationTooShort        DealCode = 441
	ErrServerInternalError     DealCode = 500
	ErrServiceMaintenance      DealCode = 503
)

// Limits of a deal, Curio's.
const (
	// MaxURLs is the most URLs an http source may list.
	MaxURLs = 10
	// MaxHeaders is the most headers one URL may carry.
	MaxHeaders = 10
	// MinDuration is the shortest ddo_v1 deal without an allocation
	// (180 days).
	MinDuration = abi.ChainEpoch(518400)
)

// Rejection is a deal refused, or an error answering about it: the code
// and a reason for the client.
type Rejection struct {
	Code   DealCode
	Reason string
}

// Error returns the reason.
func (r *Rejection) Error() string { return fmt.Sprintf("%d: %s", r.Code, r.Reason) }

// Reject returns a Rejection of code with a formatted reason.
func Reject(code DealCode, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// PieceInfo is what a piece CID v2 says of its piece.
type PieceInfo struct {
	// PieceCID is the piece CID v1 (baga6ea4seaq…).
	PieceCID cid.Cid
	// Size is the padded piece size.
	Size abi.PaddedPieceSize
	// RawSize is the payload's size in bytes.
	RawSize uint64
}

// ParsePieceCID checks a deal's piece CID as Curio does (see the package
// documentation) and returns what it says.
func ParsePieceCID(c cid.Cid) (PieceInfo, error) {
	if !c.Defined() {
		return PieceInfo{}, errors.New("piece cid is not defined")
	}
	if c.Prefix().Codec != cid.Raw {
		return PieceInfo{}, fmt.Errorf("piece cid %s is not raw: a piece CID v2 is required", c)
	}
	root, raw, size, err := piece.ParseCIDv2Strict(c)
	if err != nil {
		return PieceInfo{}, fmt.Errorf("invalid piece cid: %w", err)
	}
	if raw == 0 {
		return PieceInfo{}, errors.New("payload size is 0")
	}
	return PieceInfo{PieceCID: piece.CIDv1(root), Size: size, RawSize: raw}, nil
}

// Validate checks the deal on its own (see the package documentation) as
// sent by signer, the request's authenticated address. It returns nil or
// the Rejection Curio answers.
func (d *Deal) Validate(signer address.Address) *Rejection {
	if d.Client == "" {
		return Reject(ErrBadProposal, "client is empty")
	}
	if d.Client != signer.String() {
		return Reject(ErrBadProposal, "client in deal does not match client in auth header")
	}
	if r := d.Products.validate(); r != nil {
		return r
	}
	if d.Data != nil {
		return d.Data.validate()
	}
	return nil
}

func (p *Products) validate() *Rejection {
	n := 0
	if p.DDOV1 != nil {
		n++
		if r := p.DDOV1.validate(); r != nil {
			return r
		}
		if p.RetrievalV1 == nil {
			return Reject(ErrProductValidationFailed, "retrieval v1 is required for ddo v1")
		}
		if p.RetrievalV1.AnnouncePiece {
			return Reject(ErrProductValidationFailed, "announce piece is not supported for ddo v1")
		}
	}
	if r := p.RetrievalV1; r != nil && !r.Indexing && r.AnnouncePayload {
		return Reject(ErrProductValidationFailed, "deal cannot be announced to IPNI without indexing")
	}
	if p.PDPV1 != nil {
		return Reject(ErrUnsupportedProduct, "product %s is not supported by the provider", ProductPDPV1)
	}
	if n == 0 {
		return Reject(ErrProductValidationFailed, "no products defined")
	}
	return nil
}

func (d *DDOV1) validate() *Rejection {
	if d.Provider == address.Undef || d.Provider.Empty() {
		return Reject(ErrProductValidationFailed, "provider address is not set")
	}
	if d.StartEpoch != nil && *d.StartEpoch <= 0 {
		return Reject(ErrProductValidationFailed, "start epoch must be positive")
	}
	if d.AllocationID != nil && *d.AllocationID == verifreg.NoAllocationID {
		return Reject(ErrProductValidationFailed, "incorrect allocation id")
	}
	if d.AllocationID == nil && d.Duration < MinDuration {
		return Reject(ErrDurationTooShort, "duration must be at least %d", MinDuration)
	}
	if d.MarketAddress != "" && !isHexAddress(d.MarketAddress) {
		return Reject(ErrProductValidationFailed, "market address must be 0x and 40 hex digits")
	}
	noAddr := d.NotificationAddress == address.Undef || d.NotificationAddress.Empty()
	if noAddr && d.NotificationPayload != nil {
		return Reject(ErrProductValidationFailed, "notification payload cannot be set without notification address")
	}
	if !noAddr && d.NotificationPayload == nil {
		return Reject(ErrProductValidationFailed, "notification payload is not set")
	}
	return nil
}

// isHexAddress reports whether s is an Ethereum address: 0x and 40 hex
// digits.
func isHexAddress(s string) bool {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || len(h) != 40 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

func (d *DataSource) validate() *Rejection {
	if _, err := ParsePieceCID(d.PieceCID); err != nil {
		return Reject(ErrBadProposal, "%v", err)
	}
	sources := 0
	for _, set := range []bool{d.SourceHTTP != nil, d.SourceOffline != nil, d.SourceAggregate != nil, d.SourceHTTPPut != nil} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		return Reject(ErrBadProposal, "multiple sources defined for data source")
	}
	if sources == 0 {
		return Reject(ErrBadProposal, "no source defined for data source")
	}
	if d.SourceAggregate != nil {
		return Reject(ErrUnsupportedDataSource, "data source %s is not supported by the provider", SourceAggregate)
	}
	formats := 0
	for _, set := range []bool{d.Format.Car != nil, d.Format.Aggregate != nil, d.Format.Raw != nil} {
		if set {
			formats++
		}
	}
	if d.Format.Aggregate != nil && d.Format.Aggregate.Type != AggregateTypeV1 {
		return Reject(ErrMalformedDataSource, "aggregate type not supported")
	}
	if formats == 0 {
		return Reject(ErrBadProposal, "no format defined")
	}
	if formats > 1 {
		return Reject(ErrBadProposal, "multiple formats defined")
	}
	if d.Format.Aggregate != nil {
		return Reject(ErrUnsupportedDataSource, "aggregate pieces are not supported by the provider")
	}
	if h := d.SourceHTTP; h != nil {
		if len(h.URLs) == 0 {
			return Reject(ErrMalformedDataSource, "no urls defined")
		}
		if len(h.URLs) > MaxURLs {
			return Reject(ErrMalformedDataSource, "maximum %d URLs are supported per piece", MaxURLs)
		}
		for i := range h.URLs {
			if err := h.URLs[i].validate(); err != nil {
				return Reject(ErrBadProposal, "invalid url: %v", err)
			}
			if len(h.URLs[i].Headers) > MaxHeaders {
				return Reject(ErrMalformedDataSource, "maximum %d headers are supported per piece", MaxHeaders)
			}
		}
	}
	return nil
}

// validate checks the URL's form and its headers' names and values. Where
// it leads (no private addresses) is the downloader's to check when it
// connects.
func (h *HTTPURL) validate() error {
	u, err := url.Parse(h.URL)
	if err != nil {
		return fmt.Errorf("parsing URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q, want http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	if u.User != nil {
		return errors.New("user info in the URL: put credentials in a header")
	}
	for name, values := range h.Headers {
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("invalid header name %q", name)
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("invalid value of header %q", name)
			}
		}
	}
	return nil
}
