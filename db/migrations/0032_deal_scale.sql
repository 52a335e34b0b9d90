-- +goose Up
-- Deals at scale. market_deals_created serves `ferryd deal list` (newest
-- first, a page at a time). The deal-end watcher: end_checked_at (unix nanoseconds) is when a
-- Complete deal was last looked up on chain, so each pass looks up the
-- deals checked longest ago, a bounded number of them. The indexes serve
-- the watcher's three queries without reading every deal: the deals past
-- their end epoch, the next ones to look up, and those whose piece is still
-- to be released.
ALTER TABLE market_deals ADD COLUMN end_checked_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX market_deals_expiry ON market_deals (checkpoint, ended_at, end_epoch);
CREATE INDEX market_deals_end_check ON market_deals (checkpoint, ended_at, end_checked_at);
CREATE INDEX market_deals_unreleased ON market_deals (uuid)
    WHERE piece_released = 0 AND (ended_at != 0 OR retry = 'fatal');
CREATE INDEX market_deals_created ON market_deals (created_at);

-- +goose Down
DROP INDEX market_deals_created;
DROP INDEX market_deals_unreleased;
DROP INDEX market_deals_end_check;
DROP INDEX market_deals_expiry;
ALTER TABLE market_deals DROP COLUMN end_checked_at;
