package sealing

import (
	"context"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
)

// DealSectorStatus is where a deal's piece is and how far its sector got.
type DealSectorStatus struct {
	Sector abi.SectorNumber
	State  string // Lotus' state name, for display
	Proven bool   // the sector is proving: the deal can be active
}

// SectorStatus returns the sector a deal's piece was placed in and how far
// that sector got (ErrUnknownDeal for a deal never given to
// AddPieceToAny).
func (s *Sealing) SectorStatus(ctx context.Context, dealUUID uuid.UUID) (DealSectorStatus, error) {
	n, state, err := s.DealSectorState(ctx, dealUUID)
	if err != nil {
		return DealSectorStatus{}, err
	}
	return DealSectorStatus{Sector: n, State: state, Proven: state == StateProving}, nil
}
