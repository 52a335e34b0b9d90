// Package devnet is an embedded Filecoin chain for development and tests:
// ferryd runs it in-process by default and it serves the same API as a
// Lotus full node (chain.Node, and JSON-RPC at /rpc/v1).
//
// What it does: one block per epoch every BlockTime with real block headers
// (CIDs as Lotus computes them); a message pool that checks signatures,
// nonces, balances and gas fields; execution with receipts and Filecoin's
// exit codes; and the actor rules everything a storage deal touches:
// accounts and sends, the storage market (escrow, PublishStorageDeals with
// the v9+ per-deal validation, deal payments, timeouts with collateral
// burnt, deal ends), the power actor's CreateMiner, the miner actor
// (peer ID, multiaddrs, worker and control addresses, pre-commit with
// CommD checked against the deals' pieces, prove-commit activating the
// deals), the verified registry (verifiers, DataCap grants, allocations
// and claims) and the DataCap token (f07). State, blocks,
// messages and receipts are kept in a SQLite database in the state
// directory, written in one transaction per block, so a restart (or a
// kill -9) resumes at the last block.
//
// What it does not do: there is no consensus (one miner, no elections, no
// null rounds, no forks); no proof of replication or of spacetime is
// checked (ProveCommitSector and ProveCommitSectors3 accept any non-empty
// proof bytes of the right count and size, and there
// are no WindowPoSt deadlines or faults); gas is a fixed schedule with a
// constant base fee, not mainnet's gas accounting; there are no pledges or
// pre-commit deposits; state is a JSON snapshot, not a HAMT of actors, so
// ParentStateRoot is a CID of that snapshot rather than a state tree root.
// Messages are executed in the block that includes them, so the state of a
// tipset includes the effects of its own messages, and MsgLookup reports
// the including tipset.
//
// Gas: each message uses a fixed amount of gas that depends only on the
// message (500,000 for a Send, 2,000,000 for an actor method, plus 2,000 per
// byte of params); the base fee is a constant 100 attoFIL; GasUsed×BaseFee
// is burnt (to f099) and GasLimit×GasPremium (capped at GasFeeCap−BaseFee)
// goes to the reward actor f02; unused gas is not charged.
// GasEstimateMessageGas returns that gas × 1.25, a premium of 1,000 and a
// fee cap of 4×BaseFee + premium. Messages may be up to 512 KiB (Lotus:
// 64 KiB) so that a PublishStorageDeals of a few hundred deals fits.
//
// Direct data onboarding (FIP-0076), as builtin-actors do it: DataCap is
// an FRC-46 token of the DataCap actor f07 (10^18 units per byte), minted
// to a client by AddVerifiedClient (from a verifier, or from the root key,
// which on the devnet may grant any amount) with the market as operator.
// Tokens move only to or from the verified registry f06: a client's
// Transfer (method 80475954) to f06 with AllocationRequests as operator
// data runs the registry's receiver hook (3726118371), which checks each
// request (size ≥ 1 MiB, 180 days ≤ TermMin ≤ TermMax ≤ 5 years, now ≤
// Expiration ≤ now + 60 days, the provider a miner) and that the tokens
// pay exactly for them, and makes the allocations for the sender; a
// verified PublishStorageDeals makes its deals' allocations the same way
// (TransferFrom by the market, TermMin the deal's duration, TermMax 90
// days more, Expiration its start) and keeps them pending until the deal
// is activated, when the sector claims them. A sector pre-committed
// without deals (PreCommitSectorBatch2 keeps its declared unsealed CID) is
// proven with ProveCommitSectors3 (method 34) and the manifest of its
// pieces: their CommD must be the pre-committed one; pieces with an
// allocation key are claimed through ClaimAllocations (method 9: same
// provider, client, piece and size, not expired, the sector's remaining
// life within the allocation's terms), which stores a Claim under the
// allocation's ID, removes the allocation and burns its DataCap; pieces
// with notifications are announced to the actors they name with
// SectorContentChanged (2034386435), and the market activates the deal a
// payload names when its piece, size, provider and dates fit. Per-sector
// failures and RequireActivationSuccess / RequireNotificationSuccess are
// the actors'. RemoveExpiredAllocations returns the DataCap of allocations
// that can no longer be claimed. A method that calls other actors undoes
// everything when it fails, as a message does on Filecoin. Lotus' read
// methods StateGetAllocation(s), StateGetAllAllocations,
// StateGetAllocation(Id)ForPendingDeal, StateGetClaim(s),
// StateGetAllClaims, StateVerifiedClientStatus (the DataCap balance in
// bytes) and StateVerifiedRegistryRootKey are served with Lotus' shapes.
// Not there: ExtendClaimTerms and RemoveExpiredClaims (a claim's TermMax
// can be raised only through the receiver hook's extensions), claims that
// end, ProveReplicaUpdates3 (snap deals), deal or claim events, and the
// quality-adjusted power of verified data (power is raw bytes).
//
// Market and miner policy: deal durations 518,400…3,680,640 epochs; minimum
// provider collateral is Filecoin's formula (1% of circulating supply ×
// size / max(network power, baseline)) with a fixed circulating supply of
// 500,000,000 FIL and baseline of 2 EiB, i.e. about 2.17 million attoFIL
// per padded byte (ProviderCollateralBounds); the maximum is the total FIL
// supply. Pre-commits can be proven PreCommitChallengeDelay epochs after
// they land (5 on the devnet) and expire, unproven, after 30 days; a sector
// must expire at least 180 days after the latest activation its pre-commit
// allows (pre-commit epoch + 30 days), as in the actors. Payments
// to providers are settled every 100 epochs and at the deal's end. Policy
// lets tests shorten all of these.
//
// Keys: the genesis account (1,000,000,000 FIL) is created at first start
// in Config.Wallet, the wallet the node "holds" (WalletSign and
// MpoolPushMessage sign with it); the verified registry root key (which
// GrantDataCap uses) lives in the devnet's own keystore in Dir/keystore.
// Open a devnet again with the same wallet.
//
// Persistence: Dir/chain.db (SQLite, WAL) keeps every block header, every
// executed message with its receipt, the state after each of the last 300
// blocks, and the pending message pool; pending messages still valid are
// put back in the pool at restart.
//
// API: besides chain.Node the devnet serves chain.FullNode, the read
// methods Lotus' tools and Boost's client call (ChainNotify over the
// websocket only), with Lotus' permissions: tokens (package auth, signed
// with a secret made at genesis) grant read, write, sign, admin; a request
// without one may read. MpoolPushMessage honours MessageSendSpec.MsgUuid as
// Lotus does (the message signed for a MsgUuid is kept and returned again).
// Beside Lotus' "Filecoin" namespace, the "Devnet" namespace
// (lotus.Devnet) has the faucet, Fund, which sends up to MaxFund from the
// genesis account, and the notary, GrantDataCap, which sends
// AddVerifiedClient from the root key, both for a token with write, so
// clients get funds and DataCap without a token that may sign with the
// keys the node holds. StateNetworkName is "ferry-devnet". StateGetActor
// reports legacy code CIDs, raw CIDs whose identity multihash holds
// "fil/7/<name>" (see CodeCID), since the devnet runs no actor bytecode and
// so has no manifest; an actor's Head is a CID of its devnet state record.
// Miner power is the size of the proven, unexpired sectors (quality
// adjusted power equals raw power); StateMinerAvailableBalance is the
// whole miner balance (nothing is locked); proving deadlines use
// Filecoin's WindowPoSt parameters with the miner's ID as the period
// offset, but no WindowPoSt is checked; StateCirculatingSupply is the fixed
// 500,000,000 FIL of the collateral formula; the gas estimates are the
// fixed schedule above.
//
// ID addresses: the system actors sit at their usual IDs (f00 system, f02
// reward, f03 cron, f04 power, f05 market, f06 verified registry, f07
// DataCap, f099
// burnt funds), genesis accounts start at f0100, and actors created later
// (accounts and miners alike) get IDs from f01000 upward, so the first actor
// created after genesis, typically the provider's miner, is f01000.
package devnet
