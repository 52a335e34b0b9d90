-- +goose Up
-- The end of a Complete deal on chain: ended_at (unix nanoseconds, 0 while
-- the deal is active) and end_reason ('expired', 'slashed', or 'removed' when
-- the chain dropped the deal before its end epoch). piece_released is set
-- once the piece's index entry and IPNI advertisement were dealt with.
ALTER TABLE market_deals ADD COLUMN ended_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE market_deals ADD COLUMN end_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE market_deals ADD COLUMN piece_released INTEGER NOT NULL DEFAULT 0;
CREATE INDEX market_deals_piece ON market_deals (piece_cid);

-- +goose Down
DROP INDEX market_deals_piece;
ALTER TABLE market_deals DROP COLUMN piece_released;
ALTER TABLE market_deals DROP COLUMN end_reason;
ALTER TABLE market_deals DROP COLUMN ended_at;
