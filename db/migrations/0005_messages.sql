-- +goose Up
-- chain_messages is every chain message chain/sender sent, under the id
-- its caller named it by. A row is written before its message is pushed, so
-- a caller that asks again with the same id (after a crash, say) finds the
-- message instead of sending a second one.
--
-- message is what the caller asked for (From, To, Value, Method, Params;
-- CBOR of a chain.Message without nonce or gas), kept so that a message
-- whose nonce another message took can be signed again. version counts
-- those re-signings; the node-signed path derives the MsgUuid it gives
-- MpoolPushMessage from (id, version). state is 'recorded' (the node has
-- not signed it yet), 'signed' (signed, maybe pushed), 'pushed' (the pool
-- took it) or 'executed' (on chain; exec_cid is the CID that executed,
-- which differs from cid when the message was replaced).
CREATE TABLE chain_messages (
    id          TEXT   PRIMARY KEY,
    from_addr   TEXT   NOT NULL, -- the sender's key address (f1/f3)
    created_at  BIGINT NOT NULL, -- unix nanoseconds
    updated_at  BIGINT NOT NULL, -- unix nanoseconds
    message     BLOB   NOT NULL,
    max_fee     TEXT   NOT NULL, -- attoFIL; '' when the caller set none
    version     BIGINT NOT NULL,
    state       TEXT   NOT NULL,
    nonce       BIGINT,          -- NULL until signed
    signed      BLOB,            -- CBOR of the chain.SignedMessage; NULL until signed
    cid         TEXT   NOT NULL, -- the signed message's CID; '' until signed
    exec_cid    TEXT   NOT NULL,
    UNIQUE (from_addr, nonce)
);
CREATE INDEX chain_messages_pending ON chain_messages (from_addr, state, nonce);

-- chain_nonces is the next nonce the sender of from_addr assigns (locally
-- signed messages only; the node assigns its own). Assigning one updates the
-- row, which serialises concurrent senders of one address on SQLite and on
-- PostgreSQL alike.
CREATE TABLE chain_nonces (
    from_addr TEXT   PRIMARY KEY,
    next      BIGINT NOT NULL
);

-- +goose Down
DROP TABLE chain_nonces;
DROP TABLE chain_messages;
