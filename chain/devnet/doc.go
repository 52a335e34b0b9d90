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
// deals) and the verified registry (verifiers, DataCap). State, blocks,
// messages and receipts are kept in a SQLite database in the state
// directory, written in one transaction per block, so a restart (or a
// kill -9) resumes at the last block.
//
// What it does not do: there is no consensus (one miner, no elections, no
// null rounds, no forks); no proof of replication or of spacetime is
// checked (ProveCommitSector accepts any non-empty proof bytes, and there
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
// genesis account for a token with write, so clients are funded without a
// token that may sign with the keys the node holds. StateNetworkName is "ferry-devnet". StateGetActor
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
// reward, f03 cron, f04 power, f05 market, f06 verified registry, f099
// burnt funds), genesis accounts start at f0100, and actors created later
// (accounts and miners alike) get IDs from f01000 upward, so the first actor
// created after genesis, typically the provider's miner, is f01000.
package devnet
