-- +goose Up
-- Admission also tags the client's escrow: what the deal will lock of the
-- client's market balance (storage price × duration + client collateral),
-- by the client's key address, until the deal is published, so concurrent
-- proposals of one client cannot promise more than its available escrow.
-- nano/atto split as for the other amounts. Admission sums every tag in one
-- pass, this client's escrow among them.
ALTER TABLE market_funds_tags ADD COLUMN client TEXT NOT NULL DEFAULT '';
ALTER TABLE market_funds_tags ADD COLUMN escrow_nano INTEGER NOT NULL DEFAULT 0;
ALTER TABLE market_funds_tags ADD COLUMN escrow_atto INTEGER NOT NULL DEFAULT 0;

-- A proposal with the same content as an earlier deal's (piece, client,
-- provider, epochs, price) but another signature is a duplicate: the market
-- actor would refuse the second at publish. provider and price (attoFIL per
-- epoch, decimal) are recorded from now on; earlier deals have '' and are
-- not compared.
ALTER TABLE market_deals ADD COLUMN provider TEXT NOT NULL DEFAULT '';
ALTER TABLE market_deals ADD COLUMN price TEXT NOT NULL DEFAULT '';
CREATE INDEX market_deals_content ON market_deals (piece_cid, client_key, start_epoch, end_epoch);

-- +goose Down
DROP INDEX market_deals_content;
ALTER TABLE market_deals DROP COLUMN price;
ALTER TABLE market_deals DROP COLUMN provider;
ALTER TABLE market_funds_tags DROP COLUMN escrow_atto;
ALTER TABLE market_funds_tags DROP COLUMN escrow_nano;
ALTER TABLE market_funds_tags DROP COLUMN client;
