-- +goose Up
-- Direct data onboarding deals (FIP-0076) share market_deals with storage
-- market deals; kind says which a row is: 'market' (a Boost storage deal,
-- published with PublishStorageDeals) or 'direct' (its piece claims
-- verified allocation allocation_id of the client when its sector is
-- proven). A direct deal has no signed proposal: its proposal column holds
-- the CBOR of the PieceActivationManifest its sector is proven with, and
-- signed_proposal_cid, which must be unique and set, its UUID. Its data
-- comes from transfer_type 'http' (downloaded to staging), 'file' (read
-- where it is) or '' (an upload to staging_path, continued by an import).
-- delete_after_add removes a file the market did not create once the piece
-- is in a sector (import-direct --delete-after-import); unlike an owned
-- staging file it is kept when the deal fails.
ALTER TABLE market_deals ADD COLUMN kind TEXT NOT NULL DEFAULT 'market';
ALTER TABLE market_deals ADD COLUMN allocation_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE market_deals ADD COLUMN delete_after_add INTEGER NOT NULL DEFAULT 0;
CREATE INDEX market_deals_allocation ON market_deals (allocation_id, client_key);

-- +goose Down
DROP INDEX market_deals_allocation;
ALTER TABLE market_deals DROP COLUMN delete_after_add;
ALTER TABLE market_deals DROP COLUMN allocation_id;
ALTER TABLE market_deals DROP COLUMN kind;
