-- +goose Up
-- The /metrics count of pieces by state reads this index, not every row.
CREATE INDEX index_pieces_state ON index_pieces (state);

-- +goose Down
DROP INDEX index_pieces_state;
