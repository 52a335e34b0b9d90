-- +goose Up
-- Publish batches send their message through a message sender, by id:
-- msg_id is the message's id there (the batch's own once recorded) and
-- msg_cid the CID the sender returned, empty until then. The market's
-- interim sender keeps what it signed in market_messages, looked up by id
-- before anything is signed again, so a resend after a crash sends the same
-- message; the chain's message sender takes this over.
ALTER TABLE market_publish_batches ADD COLUMN msg_id TEXT NOT NULL DEFAULT '';
CREATE TABLE market_messages (
    id         TEXT    PRIMARY KEY, -- the message id (a UUID)
    created_at INTEGER NOT NULL,    -- unix nanoseconds
    msg_cid    TEXT    NOT NULL,    -- CID of the signed message
    signed_msg BLOB    NOT NULL     -- CBOR of the chain.SignedMessage
);
-- Batches recorded before keep their signed message, under an id made from
-- the batch number; those not yet landed are sent (looked up or pushed
-- again) as before.
UPDATE market_publish_batches SET msg_id = '00000000-0000-4000-8000-' || substr('000000000000' || id, -12, 12);
INSERT INTO market_messages (id, created_at, msg_cid, signed_msg)
    SELECT msg_id, created_at, msg_cid, signed_msg FROM market_publish_batches;
UPDATE market_publish_batches SET state = 'sending' WHERE state IN ('signed', 'pushed');
ALTER TABLE market_publish_batches DROP COLUMN signed_msg;

-- +goose Down
ALTER TABLE market_publish_batches ADD COLUMN signed_msg BLOB NOT NULL DEFAULT x'';
UPDATE market_publish_batches SET signed_msg = coalesce(
    (SELECT m.signed_msg FROM market_messages m WHERE m.id = market_publish_batches.msg_id), x'');
UPDATE market_publish_batches SET state = 'signed' WHERE state = 'sending';
DROP TABLE market_messages;
ALTER TABLE market_publish_batches DROP COLUMN msg_id;
