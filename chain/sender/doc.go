// Package sender sends chain messages from one address, each under an id
// its caller chooses, and follows them until they execute. It is the only
// way Ferry sends a message: the market's publisher, sealing's pre-commits
// and commits, the node's miner set-up and the client all go through a
// Sender, so that no two of them assign nonces on their own.
//
// # What a caller sees
//
// Send(ctx, id, msg, spec) signs and pushes msg (From, To, Value, Method and
// Params set by the caller; nonce and gas filled in, the fee bounded by
// spec.MaxFee) as the message named id, and returns its CID. Calling Send
// again with the same id, in this process or after a crash, never sends a
// second message: it returns the CID of the one already sent, pushing it
// again first in case the pool lost it. An id given for a different message
// (another To, Method, Value or Params) is refused with ErrIDReused.
//
// Wait(ctx, id, confidence) waits until the message sent as id has executed
// with confidence epochs on top and returns its lookup; lookup.Message is
// the CID that executed, which differs from the one Send returned when the
// message was replaced. The receipt's exit code is the caller's to judge.
//
// A caller must treat a message as possibly sent once Send has been called,
// whatever it returned: the way to try again is Send with the same id,
// never a new id for the same intent.
//
// # Where the key lives
//
// When Config.Keys holds the key of From (the devnet's worker, a client's
// wallet), the Sender signs locally: it estimates gas
// (GasEstimateMessageGas), assigns the nonce, signs, records the signed
// message in the database and only then pushes it (MpoolPush). Nonces come
// from the chain_nonces row of From, updated in the same transaction that
// records the message: the next nonce is the larger of that row and the
// node's MpoolGetNonce, so two Senders of one address (in one process or
// several over one database) never assign the same nonce, and messages
// sent from the address by other means are stepped over.
//
// Otherwise the node holds the key (a Lotus wallet on the real network) and
// the Sender records the message, then calls MpoolPushMessage with a
// MessageSendSpec whose MsgUuid is derived from id: Lotus (and the devnet)
// remember the message signed for a MsgUuid and return it, unsigned again,
// when asked a second time, so a crash between the push and recording its
// result does not send the message twice. The node assigns the nonce.
//
// # The database is the truth
//
// Each message is a row of chain_messages (migration 0005_messages.sql),
// written before anything leaves the process:
//
//	recorded  the node has not signed it yet (node-signed path)
//	signed    signed, recorded, maybe pushed (locally signed path)
//	pushed    the pool took it
//	executed  on chain (exec_cid is the CID that executed)
//
// A kill -9 at any point leaves a row from which Send or Wait, called again
// with the id, carries on: a signed message is pushed again as it is,
// never re-signed with the same nonce; a recorded one is given to the node
// under the same MsgUuid. Wait pushes a message not known to be in the pool
// before it waits, since a node cannot wait for a message it has not seen.
//
// # When another message takes the nonce
//
// A message can lose its nonce to a message sent from the same address
// elsewhere (a `lotus send` by the operator, a program that does not use
// this package). Wait, when the message has not executed after
// Config.Recheck, and Send, when the pool refuses it, look at the chain: if
// the address' nonce has passed the message's and neither the message nor
// a replacement of it executed (or the node has never seen it: Lotus then
// fails the lookup), it can never land, and it is signed again
// under the same id with a new nonce (its version goes up; the node-signed
// path then uses a new MsgUuid). While it is merely pending, Wait pushes it
// again after each Recheck, with any earlier message of the address still
// pending, so that a message the pool dropped does not hold up the ones
// after it.
//
// What it does not do: it does not raise the fees of a message that waits
// (replace-by-fee is the operator's, with Lotus' tools), and it keeps no
// queue of its own in memory: what a caller stops asking about is pushed
// again only while another message of the address waits behind it.
package sender
