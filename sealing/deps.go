package sealing

import (
	"context"
	"fmt"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
)

// Chain is what sealing reads from the chain: chain.Node (the devnet or a
// Lotus node) has it.
type Chain interface {
	ChainHead(ctx context.Context) (*chain.TipSet, error)
	StateMinerInfo(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (chain.MinerInfo, error)
	StateSectorPreCommitInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorPreCommitOnChainInfo, error)
	StateSectorGetInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorOnChainInfo, error)
	StateSearchMsg(ctx context.Context, from chain.TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error)
}

// MessageSender sends chain messages from one address with nonces it
// assigns, once per id. It is the Send half of the project's one message
// sender (chain/sender): sealing looks receipts up itself, one sector at a
// time on each pass, so that no message holds up the other sectors.
type MessageSender interface {
	// Send signs and pushes msg (From, To, Value, Method, Params set;
	// nonce and gas filled in by the sender, the fee bounded by
	// spec.MaxFee) as the message named id. Calling it again with the
	// same id — after a crash, say — never sends a second message: it
	// returns the CID of the one already sent (pushing it again if the
	// pool lost it).
	Send(ctx context.Context, id uuid.UUID, msg *chain.Message, spec *chain.MessageSendSpec) (cid.Cid, error)
}

// MpoolPusher is a node that signs and pushes messages itself, with the
// key of their sender: Lotus' MpoolPushMessage (the key in the node's
// wallet) and the devnet's.
type MpoolPusher interface {
	MpoolPushMessage(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec) (*chain.SignedMessage, error)
}

// MpoolSender is a MessageSender over MpoolPushMessage: the node assigns
// the nonce and signs, and the id goes as the message's MsgUuid, which
// Lotus uses to return the message it already sent. A node that does not
// keep MsgUuids (the devnet) may send a second message when Send is called
// again for an id whose CID was never recorded; the sector steps check the
// chain before they send, which catches what landed.
type MpoolSender struct {
	Node MpoolPusher
}

// Send pushes msg through the node as the message named id.
func (m MpoolSender) Send(ctx context.Context, id uuid.UUID, msg *chain.Message, spec *chain.MessageSendSpec) (cid.Cid, error) {
	sp := chain.MessageSendSpec{}
	if spec != nil {
		sp = *spec
	}
	sp.MsgUuid = id
	sm, err := m.Node.MpoolPushMessage(ctx, msg, &sp)
	if err != nil {
		return cid.Undef, fmt.Errorf("pushing message %s: %w", id, err)
	}
	c, err := sm.Cid()
	if err != nil {
		return cid.Undef, fmt.Errorf("message %s: CID: %w", id, err)
	}
	return c, nil
}
