// Package market is the storage provider: the Boost-compatible deal
// protocol handlers, proposal validation, atomic admission, direct data
// onboarding deals (FIP-0076), and the deal pipeline that takes each deal
// from Accepted to Complete through persisted checkpoints, with the
// batched publisher that never sends a publish message twice and the
// watcher that follows Complete deals to their end on chain.
//
// The database is the truth: a deal is a market_deals row with a
// checkpoint; every step reads the row, does idempotent work and records
// the next checkpoint, so a process killed at any point resumes where it
// stopped. No queue lives only in memory.
//
// # A deal's path through the files
//
// provider.go: Provider owns the rest. Start reads the miner's worker,
// loads the ask, registers the protocol handlers (one request and one
// response per stream, through serve) and starts the publisher, the end
// watcher and one goroutine per unfinished deal. Close stops them all;
// deals continue from their checkpoints at the next Start.
//
// validate.go: a proposal (Propose, the /fil/storage/mk/1.2.x handler) is
// checked in SPEC.md §1's order, then against the provider's policy (the
// transfer URL's host resolved and refused when it leads to a private
// address, unless AllowPrivateAddresses) and the external filter.
// Admission then records the deal row, its funds tag (the client's escrow,
// the provider collateral and the publish fee) and its staging tag in one
// transaction, after checking within it that the proposal duplicates no
// deal (the same signed proposal, or the same piece, client, provider,
// epochs and price) and comparing what all tags hold with the chain
// balances read just before, so concurrent proposals cannot over-commit.
// A rejection holds the client's reason apart from its internal cause,
// which only the operator's log sees, with the deal's UUID.
//
// pipeline.go: the table of steps of a storage market deal (pipeline)
// names each checkpoint, the step that advances a deal from it and what
// that step may wait on:
//
//	Accepted             transfer: download (or wait for import-data) with CommP in-stream, checked, and the data's CRC-32C recorded
//	Transferred          publish: queue for the publisher, which takes over
//	Published            publish confirmation: the publisher confirms it when the message lands
//	PublishConfirmed     add piece: AddPieceToAny (idempotent per deal; sealing checks the CRC, not the CommP again)
//	AddedPiece           index (from the staging file while it is here) and announce, staging freed
//	IndexedAndAnnounced  sealing: wait until the sector is proven and the deal active on chain
//	Complete
//
// A direct deal (KindDirect) has its own table (directPipeline), with no
// publish: Accepted (its file read where it is, a download, or an upload
// continued by ImportData, CommP checked) → Transferred (AddPieceToAny
// with the piece's PieceActivationManifest) → AddedPiece (index and
// announce) → IndexedAndAnnounced (sealing: the sector proven with
// ProveCommitSectors3, and the claim of its allocation on chain in that
// sector) → Complete. The deal's kind picks its table; checkpoints keep
// their names and order.
//
// direct.go: ImportDirect is the entry point of direct deals, for
// `ferryd import-direct` and any other front end (Curio's ddo_v1 over
// HTTP): give it a DirectDeal, the client's allocation and the piece (CID
// v1 or v2), a start epoch (default head + 2 days), a duration (default
// the allocation's TermMin) and the data's source, exactly one of a file
// on this machine (DeleteAfterImport removes it once the piece is in a
// sector), an HTTP download into staging, an upload into staging, or a
// file a front end received into staging and checked (Staged, below).
// It runs Boost's import-direct checks against the chain (the allocation
// exists and is this miner's, for this piece and padded size, its
// Expiration not before the start, the start after the sealing buffer,
// TermMin no longer than a sector can be committed for, no other live
// deal of the same allocation), records the deal at Accepted with its
// staging tag in one transaction and returns its DealInfo; refusals wrap
// ErrDirectDealRejected. The deal ends at start + duration. An upload's
// bytes go to DealInfo.DataPath, then ImportData(uuid, that path) checks
// them and the deal goes on; the staging file is the market's and removed
// once the piece is in a sector and indexed. CheckDirect makes the same checks
// without taking the deal, for a front end that must answer its client
// before the data arrives.
//
// # Staging taken over from a front end
//
// A front end that receives a deal's data itself (httpdeal's Market 2.0
// uploads) draws on the same staging budget as every deal, once:
//
//  1. When it accepts the deal it reserves the bytes (ReserveStaging,
//     under its own id; a market_staging_reservations row). Admission of
//     every deal and reservation sums tags and reservations together
//     against StagingCapacity.
//  2. It writes the data to a file of its own in the staging directory and
//     checks its commitment.
//  3. It hands the deal over with ImportDirect, Data.Staged naming the
//     file and Reservation the id. The transaction that records the deal
//     deletes the reservation and inserts the deal's staging tag, and the
//     deal row names the file as its own staging file (staging_owned): the
//     market removes it once the piece is in a sector, or when the deal
//     fails. Nothing is copied or renamed, and the file is not read
//     before sealing reads it (sealing checks its commitment as it
//     writes the piece).
//
// A crash before that transaction commits leaves the reservation and the
// file the front end's, and it hands the deal over again after the
// restart; a crash after it leaves them the deal's, and the hand-off
// again finds the deal recorded under its UUID (the front end derives it
// from its own id). There is no moment when the bytes are counted twice
// or not at all, or when the file belongs to no one. A front end whose
// deal dies before the hand-off removes its file and releases the
// reservation (ReleaseStaging); after a crash it finds the reservations
// left with StagingReservations.
//
// One goroutine per deal (kick, run) advances it a step at a time: the
// unit of work is "advance deal X from its checkpoint", and its input is
// the deal's row. A step's error is fatal (fatalError: the deal fails and
// releases its tags and staging file) or retried with back-off
// (RetryAuto) up to MaxAutoRetries, then left to an operator
// (RetryManual). A download error transfer calls permanent (a 404, a body
// longer than declared, a refused address) is fatal; URLs in errors and
// logs are redacted (transfer.Redact).
//
// publish.go: the publisher batches queued deals (MaxDealsPerPublishMsg,
// or PublishMsgPeriod, or PublishNow), re-checks each one against the
// chain (start epoch, the client's and the provider's escrow, summed over
// the batch), records the batch with its deals moved to Published, then
// sends the PublishStorageDeals message through the MessageSender
// (chain/sender) under the batch's message id and waits for its receipt;
// valid deals get their chain deal IDs (PublishConfirmed), rejected ones
// fail.
//
// end.go: the end watcher marks Complete deals expired from the chain
// head alone and looks a bounded number of them up on chain each pass
// (slashed, removed; a direct deal whose claim is gone is removed); an
// ended deal, or one failed after AddedPiece, releases its piece through
// the PieceRemover once.
//
// operator.go and ask.go: the operator API's view (Deals, Deal,
// DealCounts) and commands (Retry, Fail, Cancel, ImportData, PublishNow,
// SetAsk), and the status and ask protocols.
//
// cluster.go: several ferryd nodes on one database (Deps.Leases,
// Deps.Does, Deps.Files). A deal's goroutine holds the deal's lease while
// it advances it and does only this node's steps; every poll each node
// takes the unfinished deals at its steps that no live node holds; the
// publisher and the end watcher run on one publishing node at a time; a
// batch takes only deals still queued, so a deal is in one message however
// the publisher moved; a staging file is recorded with its node and read
// from there by the node that adds the piece.
//
// store.go: every SQL statement of the package, behind typed methods.
// deps.go: every interface the market needs from outside (the chain, the
// message sender, the sealer, the downloader, the indexer and remover, the
// cluster's leases and files).
//
// Validation also refuses verified deals the verified registry would
// refuse an allocation for at publish (a piece under 1 MiB, a start more
// than 60 days away), which would fail the whole publish message.
//
// What it does not do: libp2p data transfers (only "http") or deal kinds
// beyond Boost's 1.2.x storage deals and direct deals.
package market
