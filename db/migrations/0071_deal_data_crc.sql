-- +goose Up
-- data_crc32c is the CRC-32C (Castagnoli) of a deal's data as the market
-- received it and checked it against the piece CID (NULL when it was not
-- computed: data a front end staged, deals transferred before this
-- column): sealing checks the bytes it writes against it instead of
-- computing their piece commitment a second time.
ALTER TABLE market_deals ADD COLUMN data_crc32c INTEGER;

-- +goose Down
ALTER TABLE market_deals DROP COLUMN data_crc32c;
