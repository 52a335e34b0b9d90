-- +goose Up
-- A deal's state as the operator sees it — failed (retry 'fatal'), ended
-- (ended on chain), complete (checkpoint Complete) or active — is one SQL
-- expression, the market store's dealStateSQL, and these indexes are on
-- that very expression: `deal list --state` reads its page from
-- market_deals_state_page in listing order (keyset paging, as
-- market_deals_order serves the unfiltered list), and the /metrics counts
-- read market_deals_state_count, which holds the columns the expression
-- reads, instead of every row.
CREATE INDEX market_deals_state_page ON market_deals ((CASE WHEN retry = 'fatal' THEN 'failed' WHEN ended_at != 0 THEN 'ended' WHEN checkpoint = 'Complete' THEN 'complete' ELSE 'active' END), created_at, uuid);
CREATE INDEX market_deals_state_count ON market_deals ((CASE WHEN retry = 'fatal' THEN 'failed' WHEN ended_at != 0 THEN 'ended' WHEN checkpoint = 'Complete' THEN 'complete' ELSE 'active' END), checkpoint, retry, ended_at);

-- +goose Down
DROP INDEX market_deals_state_count;
DROP INDEX market_deals_state_page;
