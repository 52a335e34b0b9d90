// Package httpdeal serves Curio's HTTP deal APIs on the provider's HTTP
// listener, so that Curio's clients (sptool, Market 2.0 clients) make deals
// with ferryd as with Curio.
//
// # mk12 over HTTP
//
// NewMK12 serves, under MK12Path, POST /store (a DealParams, at most 4 MiB),
// GET /status (a DealStatusRequest, at most 1 MiB) and GET /ask (an
// AskRequest, at most 1 MiB): the CBOR messages of the libp2p deal
// protocols byte for byte, the GETs with a body as Curio's client sends
// them, answered 200 with the CBOR answer. The request's Content-Type must
// be exactly application/cbor; a wrong type or an undecodable body gets 400
// with an empty body. Unlike Curio, the status request's signature is
// checked (MK12Provider.Status, as over libp2p). Each route allows
// DefaultRateLimit requests per second from one IP address and answers 429
// beyond.
//
// # Market 2.0 (mk20)
//
// NewMK20 serves the routes of package mk20's API under MK20Path. Every
// request needs a CurioAuth header valid for the current, previous or next
// minute (401 otherwise), and on the routes that name a deal its signer must
// be the deal's client (401, as Curio answers, also for a deal that does not
// exist). Deals are checked with mk20's Validate and then against the chain
// and this provider (the provider is this miner, the piece fits a sector,
// the start epoch leaves SealEpochs to seal, the allocation is the client's
// for this miner, piece and size, its terms hold the duration and it does
// not expire before the start) and by the market (MK20Market.Check), each
// refusal with Curio's code and reason, as text "Reason: <why>". The
// data's staging space is reserved through Staging (429 when full) before
// the deal is recorded; a deal sent again unchanged is accepted again
// (unless it failed), another under the same identifier refused.
//
// Deals and uploads are rows of mk20_deals, mk20_uploads and
// mk20_upload_chunks (migration 0060). A deal with an http or offline
// source goes to the market (MK20Market.Start) at once; a put deal waits
// for its upload, chunked (POST /uploads/{id} with raw_size and a
// power-of-two chunk_size, PUT /uploads/{id}/{n} from 1, GET /uploads/{id},
// POST /uploads/finalize/{id}) or serial (PUT then POST /upload/{id}). Each
// chunk must be exactly its size (400), is written at (n−1)×chunk_size of
// one staging file and synced before it is recorded, so chunks come in any
// order, again after a failure (409 once recorded) and after a restart.
// CommP is computed while chunks arrive in order (see mk20upload.go); at
// finalize the commitment is compared with the deal's piece CID: a match
// hands the deal and the file to the market, a mismatch fails the deal.
// Until then the deal is uploading or processing; afterwards its status is
// the market's (MK20Market.State).
//
// # Hand-off
//
// MK20Market.Start takes the deal, the staged file and the deal's staging
// reservation over in one step (the market's transaction: see package
// market, "Staging taken over from a front end"), so the reservation is
// the deal's staging tag from the proposal to the sector. A refusal fails
// the deal, removing its file and releasing its reservation; a failure of
// the provider's leaves the deal as it is and the hand-off is tried again
// every RetryInterval (and at Start). Start, before the routes serve,
// releases the reservations and removes the files of deals that will never
// be handed over (never recorded, failed); every RetryInterval it also
// fails uploads that have not finished when their start epoch no longer
// leaves SealEpochs to seal.
package httpdeal
