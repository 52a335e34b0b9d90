-- +goose Up
-- staging_node is the cluster node whose staging path holds the deal's
-- data once it is transferred ('' on a single node, and for deals
-- transferred before clusters): another node adding the piece to a
-- sector reads the file from that node.
ALTER TABLE market_deals ADD COLUMN staging_node TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE market_deals DROP COLUMN staging_node;
