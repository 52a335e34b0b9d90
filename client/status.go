package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// Checkpoints are the deal checkpoint names in order.
var Checkpoints = []string{"Accepted", "Transferred", "Published", "PublishConfirmed", "AddedPiece", "IndexedAndAnnounced", "Complete"}

// CheckpointIndex returns the position of a checkpoint name in
// Checkpoints, or -1.
func CheckpointIndex(name string) int {
	for i, c := range Checkpoints {
		if c == name {
			return i
		}
	}
	return -1
}

// ErrDealFailed wraps the error of a deal the provider gave up on.
var ErrDealFailed = errors.New("deal failed")

// DealState interprets a status response: done when the deal completed,
// an error wrapping ErrDealFailed when it failed, or a provider error.
func DealState(resp *wire.DealStatusResponse) (done bool, err error) {
	if resp.Error != "" {
		return false, fmt.Errorf("provider: %s", resp.Error)
	}
	if resp.DealStatus == nil {
		return false, errors.New("provider sent no deal status")
	}
	if resp.DealStatus.Status == "Complete" {
		if resp.DealStatus.Error != "" {
			return true, fmt.Errorf("%w: %s", ErrDealFailed, resp.DealStatus.Error)
		}
		return true, nil
	}
	return false, nil
}

// Transferred reports whether the provider has all the deal's data.
func Transferred(resp *wire.DealStatusResponse) bool {
	if resp.DealStatus == nil {
		return false
	}
	if CheckpointIndex(resp.DealStatus.Status) > 0 {
		return true
	}
	return resp.TransferSize > 0 && resp.NBytesReceived >= resp.TransferSize
}

// StatusWatcher polls a deal's status.
type StatusWatcher struct {
	Host     host.Host
	Provider *Provider
	Wallet   *wallet.Wallet
	Client   address.Address
	DealUUID uuid.UUID
	// Interval between polls; 0 means one second.
	Interval time.Duration
}

// Poll asks once.
func (s *StatusWatcher) Poll(ctx context.Context) (*wire.DealStatusResponse, error) {
	return QueryDealStatus(ctx, s.Host, s.Provider, s.Wallet, s.Client, s.DealUUID)
}

// Until polls until stop returns true or an error, calling update with
// every answer. Transient errors of a poll end the wait only when the
// context does.
func (s *StatusWatcher) Until(ctx context.Context, update func(*wire.DealStatusResponse), stop func(*wire.DealStatusResponse) (bool, error)) (*wire.DealStatusResponse, error) {
	iv := s.Interval
	if iv <= 0 {
		iv = time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	var lastErr error
	for {
		resp, err := s.Poll(ctx)
		if err == nil {
			if update != nil {
				update(resp)
			}
			done, err := stop(resp)
			if err != nil || done {
				return resp, err
			}
			lastErr = nil
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("%w (last poll: %v)", ctx.Err(), lastErr)
			}
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// WaitTransferred waits until the provider has the data, or the deal fails.
func (s *StatusWatcher) WaitTransferred(ctx context.Context, update func(*wire.DealStatusResponse)) (*wire.DealStatusResponse, error) {
	return s.Until(ctx, update, func(r *wire.DealStatusResponse) (bool, error) {
		done, err := DealState(r)
		if err != nil {
			return true, err
		}
		return done || Transferred(r), nil
	})
}

// WaitComplete waits until the deal completes or fails.
func (s *StatusWatcher) WaitComplete(ctx context.Context, update func(*wire.DealStatusResponse)) (*wire.DealStatusResponse, error) {
	return s.Until(ctx, update, DealState)
}
