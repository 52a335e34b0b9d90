-- +goose Up
-- The operator's deal listings at a million deals: every listing is newest
-- first with the UUID breaking ties (keyset paging by (created_at, uuid)),
-- so each filter has an index that yields its deals in that order without
-- a sort: by state (retry, for failed deals), checkpoint and client, and
-- searches by payload root and chain deal ID find their deals directly.
-- The ingest history sums the deals whose log says their data arrived.
DROP INDEX market_deals_created; -- served by market_deals_order
CREATE INDEX market_deals_order ON market_deals (created_at, uuid);
CREATE INDEX market_deals_retry_order ON market_deals (retry, created_at, uuid);
CREATE INDEX market_deals_checkpoint_order ON market_deals (checkpoint, created_at, uuid);
CREATE INDEX market_deals_client_order ON market_deals (client_key, created_at, uuid);
CREATE INDEX market_deals_peer_order ON market_deals (client_peer, created_at, uuid);
CREATE INDEX market_deals_data_root ON market_deals (data_root);
CREATE INDEX market_deals_chain_deal ON market_deals (chain_deal_id);
CREATE INDEX market_deal_logs_transferred ON market_deal_logs (at) WHERE text = 'checkpoint Transferred';

-- +goose Down
DROP INDEX market_deal_logs_transferred;
DROP INDEX market_deals_chain_deal;
DROP INDEX market_deals_data_root;
DROP INDEX market_deals_peer_order;
DROP INDEX market_deals_client_order;
DROP INDEX market_deals_checkpoint_order;
DROP INDEX market_deals_retry_order;
DROP INDEX market_deals_order;
CREATE INDEX market_deals_created ON market_deals (created_at);
