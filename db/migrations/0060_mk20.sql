-- +goose Up
-- mk20_deals is one row per deal taken through Curio's Market 2.0 API
-- (httpdeal). deal is the JSON of the mk20.Deal as accepted (and as
-- /update filled it in); piece_cid is its piece CID v1 with piece_size and
-- raw_size beside it. state is the mk20 state while the deal is httpdeal's
-- ('accepted', 'uploading', 'processing', 'failed'); once handed_off the
-- market has it and answers for its state.
CREATE TABLE mk20_deals (
    id          TEXT    PRIMARY KEY, -- the ULID
    client      TEXT    NOT NULL,    -- the client's address, the signer of its requests
    deal        TEXT    NOT NULL,
    source      TEXT    NOT NULL,    -- http, offline or put
    piece_cid   TEXT    NOT NULL,
    piece_size  BIGINT  NOT NULL,
    raw_size    BIGINT  NOT NULL,
    state       TEXT    NOT NULL,
    error       TEXT    NOT NULL DEFAULT '',
    handed_off  BOOLEAN NOT NULL,
    created_at  BIGINT  NOT NULL,    -- unix nanoseconds
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX mk20_deals_pending ON mk20_deals (handed_off, state);

-- mk20_uploads is the upload of a put deal: chunked (POST /uploads/{id})
-- or serial (PUT /upload/{id}). The bytes go to path in the staging
-- directory; commp is the piece CID v1 of what was uploaded once it is
-- known ('' before); finalized is set by the client's finalize.
CREATE TABLE mk20_uploads (
    id          TEXT    PRIMARY KEY REFERENCES mk20_deals (id),
    chunked     BOOLEAN NOT NULL,
    chunk_size  BIGINT  NOT NULL,    -- 0 for a serial upload
    path        TEXT    NOT NULL,
    commp       TEXT    NOT NULL DEFAULT '',
    finalized   BOOLEAN NOT NULL
);

-- mk20_upload_chunks is one row per chunk of a chunked upload, numbered
-- from 1; chunk n holds the bytes at (n-1) * chunk_size.
CREATE TABLE mk20_upload_chunks (
    id        TEXT    NOT NULL REFERENCES mk20_uploads (id),
    chunk     INTEGER NOT NULL,
    size      BIGINT  NOT NULL,
    complete  BOOLEAN NOT NULL,
    PRIMARY KEY (id, chunk)
);

-- +goose Down
DROP TABLE mk20_upload_chunks;
DROP TABLE mk20_uploads;
DROP TABLE mk20_deals;
