-- +goose Up
-- Publish batches send their message through the chain's message sender
-- (chain/sender), by id: msg_id is the batch's message id there and
-- msg_cid the CID the sender returned, empty until then. The sender keeps
-- the signed message, so the batch no longer does. A batch signed before
-- this migration and not yet landed keeps msg_id '' and is followed by its
-- msg_cid on chain.
ALTER TABLE market_publish_batches ADD COLUMN msg_id TEXT NOT NULL DEFAULT '';
UPDATE market_publish_batches SET state = 'sending' WHERE state IN ('signed', 'pushed');
ALTER TABLE market_publish_batches DROP COLUMN signed_msg;

-- +goose Down
ALTER TABLE market_publish_batches ADD COLUMN signed_msg BLOB NOT NULL DEFAULT x'';
UPDATE market_publish_batches SET state = 'pushed' WHERE state = 'sending';
ALTER TABLE market_publish_batches DROP COLUMN msg_id;
