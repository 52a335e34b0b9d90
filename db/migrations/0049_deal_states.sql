-- +goose Up
-- A deal's state as the operator sees it — failed (retry 'fatal'), ended
-- (ended on chain), complete (checkpoint Complete) or active — is one SQL
-- expression, the market store's dealStateSQL, and these indexes are on
-- that very expression, so `deal list --state` reads one page of index
-- entries (keyset paging: the deals before the last one shown) and the
-- /metrics counts read a narrow index instead of every row (it holds the
-- columns the expression reads, so no row is visited). The pages of every
-- deal, newest first, read market_deals_page.
CREATE INDEX market_deals_state_page ON market_deals ((CASE WHEN retry = 'fatal' THEN 'failed' WHEN ended_at != 0 THEN 'ended' WHEN checkpoint = 'Complete' THEN 'complete' ELSE 'active' END), created_at, uuid);
CREATE INDEX market_deals_state_count ON market_deals ((CASE WHEN retry = 'fatal' THEN 'failed' WHEN ended_at != 0 THEN 'ended' WHEN checkpoint = 'Complete' THEN 'complete' ELSE 'active' END), checkpoint, retry, ended_at);
CREATE INDEX market_deals_page ON market_deals (created_at, uuid);
DROP INDEX market_deals_created;

-- +goose Down
CREATE INDEX market_deals_created ON market_deals (created_at);
DROP INDEX market_deals_page;
DROP INDEX market_deals_state_count;
DROP INDEX market_deals_state_page;
