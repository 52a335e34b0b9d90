package client

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/db"
)

// MessageConfidence is how many epochs WaitMessage waits on top of the one
// that executed the message.
const MessageConfidence = 1

// ExitError is a message that executed with a non-zero exit code.
type ExitError struct {
	// Message is the executed message's CID.
	Message cid.Cid
	// ExitCode is the receipt's exit code.
	ExitCode exitcode.ExitCode
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("message %s failed with exit code %d (%s)", e.Message, int64(e.ExitCode), e.ExitCode)
}

// messagesDB is the database in the client repo where SendMessage records
// what it sends.
const messagesDB = "messages.db"

// SendMessage sends msg, from a key of the repo's wallet, through
// chain/sender: the nonce and gas are filled in, and the signed message is
// recorded in the repo's messages.db before it is pushed, so that ferry
// commands running at once never give two messages one nonce. It returns
// the signed message's CID.
func SendMessage(ctx context.Context, n sender.Node, r *Repo, msg *chain.Message) (cid.Cid, error) {
	if has, err := r.Wallet.Has(msg.From); err != nil || !has {
		return cid.Undef, fmt.Errorf("sending from %s: its key is not in the client keystore", msg.From)
	}
	sqldb, err := db.Open(ctx, filepath.Join(r.Dir, messagesDB))
	if err != nil {
		return cid.Undef, fmt.Errorf("opening the client's message records: %w", err)
	}
	defer sqldb.Close()
	s, err := sender.New(ctx, sender.Config{DB: sqldb, Node: n, From: msg.From, Keys: r.Wallet})
	if err != nil {
		return cid.Undef, err
	}
	return s.Send(ctx, uuid.New(), msg, nil)
}

// WaitMessage waits until the message is executed and returns its lookup;
// a non-zero exit code is an *ExitError.
func WaitMessage(ctx context.Context, n chain.Node, c cid.Cid) (*chain.MsgLookup, error) {
	ml, err := n.StateWaitMsg(ctx, c, MessageConfidence, -1, true)
	if err != nil {
		return nil, fmt.Errorf("waiting for message %s: %w", c, err)
	}
	if ml.Receipt.ExitCode != exitcode.Ok {
		return ml, &ExitError{Message: ml.Message, ExitCode: ml.Receipt.ExitCode}
	}
	return ml, nil
}

// AddBalanceMessage is the message that moves amount from addr into addr's
// storage market escrow.
func AddBalanceMessage(addr address.Address, amount abi.TokenAmount) (*chain.Message, error) {
	var params bytes.Buffer
	if err := addr.MarshalCBOR(&params); err != nil {
		return nil, fmt.Errorf("encoding AddBalance params: %w", err)
	}
	return &chain.Message{
		To: builtin.StorageMarketActorAddr, From: addr, Value: amount,
		Method: builtin.MethodsMarket.AddBalance, Params: params.Bytes(),
		GasFeeCap: big.Zero(), GasPremium: big.Zero(),
	}, nil
}

// WithdrawBalanceMessage is the message that moves amount from addr's
// market escrow back to addr.
func WithdrawBalanceMessage(addr address.Address, amount abi.TokenAmount) (*chain.Message, error) {
	var params bytes.Buffer
	p := market.WithdrawBalanceParams{ProviderOrClientAddress: addr, Amount: amount}
	if err := p.MarshalCBOR(&params); err != nil {
		return nil, fmt.Errorf("encoding WithdrawBalance params: %w", err)
	}
	return &chain.Message{
		To: builtin.StorageMarketActorAddr, From: addr, Value: big.Zero(),
		Method: builtin.MethodsMarket.WithdrawBalance, Params: params.Bytes(),
		GasFeeCap: big.Zero(), GasPremium: big.Zero(),
	}, nil
}

// ErrNotDevnet is returned by FundFromDevnet on any chain that is not a
// ferry devnet.
var ErrNotDevnet = fmt.Errorf("not a ferry devnet")

// FundFromDevnet asks the faucet of the devnet at ep (the devnet's own API
// beside Lotus', lotus.DevnetNamespace) to send amount from its genesis
// account to addr; the token needs the write permission, as the one
// ferryd gives clients has. It refuses unless n, the same chain, reports a
// ferry devnet in its version, and cannot spend real funds: it signs
// nothing.
func FundFromDevnet(ctx context.Context, n chain.Node, ep Endpoint, addr address.Address, amount abi.TokenAmount) (cid.Cid, error) {
	v, err := n.Version(ctx)
	if err != nil {
		return cid.Undef, fmt.Errorf("reading the chain version: %w", err)
	}
	if !strings.Contains(v.Version, DevnetVersionTag) {
		return cid.Undef, fmt.Errorf("%w: the chain reports version %q; `ferry devnet fund` only works on the devnet ferryd runs", ErrNotDevnet, v.Version)
	}
	faucet, closer, err := lotus.DialDevnet(ctx, ep.URL, ep.Token)
	if err != nil {
		return cid.Undef, err
	}
	defer closer()
	c, err := faucet.Fund(ctx, addr, amount)
	if err != nil {
		return cid.Undef, tokenHint(fmt.Errorf("asking the devnet's faucet for %s: %w", chain.FormatFIL(amount), err))
	}
	return c, nil
}

// tokenHint adds what to do to an error caused by a missing API token.
func tokenHint(err error) error {
	s := err.Error()
	if strings.Contains(s, "permission") || strings.Contains(s, "401") {
		return fmt.Errorf("%w: this needs a devnet token with the write permission (the one ferryd writes to its repo's %s, or FULLNODE_API_INFO as `ferryd run` prints it, or %s)", err, DevnetTokenFile, EnvAPIToken)
	}
	return err
}

// AddBalance sends amount from addr, a key of the repo's wallet, into its
// market escrow, after checking the wallet holds it.
func AddBalance(ctx context.Context, n chain.FullNode, r *Repo, addr address.Address, amount abi.TokenAmount) (cid.Cid, error) {
	if amount.Sign() <= 0 {
		return cid.Undef, fmt.Errorf("amount %s is not positive", chain.FormatFIL(amount))
	}
	bal, err := n.WalletBalance(ctx, addr)
	if err != nil {
		return cid.Undef, fmt.Errorf("reading the balance of %s: %w", addr, err)
	}
	if bal.LessThan(amount) {
		return cid.Undef, fmt.Errorf("%s holds %s, less than the %s to add (plus gas)", addr, chain.FormatFIL(bal), chain.FormatFIL(amount))
	}
	msg, err := AddBalanceMessage(addr, amount)
	if err != nil {
		return cid.Undef, err
	}
	return SendMessage(ctx, n, r, msg)
}

// WithdrawBalance sends amount from addr's market escrow back to addr (a
// key of the repo's wallet), after checking that much is available (not
// locked by deals). The market actor itself would quietly withdraw less.
func WithdrawBalance(ctx context.Context, n chain.FullNode, r *Repo, addr address.Address, amount abi.TokenAmount) (cid.Cid, error) {
	if amount.Sign() <= 0 {
		return cid.Undef, fmt.Errorf("amount %s is not positive", chain.FormatFIL(amount))
	}
	mb, err := n.StateMarketBalance(ctx, addr, chain.EmptyTSK)
	if err != nil {
		return cid.Undef, fmt.Errorf("reading the market balance of %s: %w", addr, err)
	}
	if avail := big.Sub(mb.Escrow, mb.Locked); avail.LessThan(amount) {
		return cid.Undef, fmt.Errorf("%s has %s available in escrow (%s locked), less than the %s to withdraw", addr, chain.FormatFIL(avail), chain.FormatFIL(mb.Locked), chain.FormatFIL(amount))
	}
	msg, err := WithdrawBalanceMessage(addr, amount)
	if err != nil {
		return cid.Undef, err
	}
	return SendMessage(ctx, n, r, msg)
}
