-- +goose Up
-- market_tag_totals keeps the sums of the tags, so that admission reads a
-- row or two instead of summing the tags of every unfinished deal: the row
-- of client '*' holds the sums over every tag (the collateral, publish fees
-- and escrow of all funds tags, and all staging bytes tagged), and the row
-- of a client's key address the sums of that client's funds tags (its
-- space is 0: staging tags name no client). Each tag written or dropped
-- changes its rows in the same transaction, so at every commit each row
-- equals the sum of its tags. nano/atto as in the tags (the atto sums may
-- pass 10^9; amount = nano * 10^9 + atto still). A row whose tags are all
-- gone stays, holding zeros.
CREATE TABLE market_tag_totals (
    client          TEXT    PRIMARY KEY,
    collateral_nano INTEGER NOT NULL,
    collateral_atto INTEGER NOT NULL,
    fee_nano        INTEGER NOT NULL,
    fee_atto        INTEGER NOT NULL,
    escrow_nano     INTEGER NOT NULL,
    escrow_atto     INTEGER NOT NULL,
    space           INTEGER NOT NULL
);
INSERT INTO market_tag_totals (client, collateral_nano, collateral_atto, fee_nano, fee_atto, escrow_nano, escrow_atto, space)
SELECT client, sum(collateral_nano), sum(collateral_atto), sum(fee_nano), sum(fee_atto), sum(escrow_nano), sum(escrow_atto), 0
FROM market_funds_tags WHERE client != '*' GROUP BY client;
INSERT INTO market_tag_totals (client, collateral_nano, collateral_atto, fee_nano, fee_atto, escrow_nano, escrow_atto, space)
SELECT '*', coalesce(sum(collateral_nano), 0), coalesce(sum(collateral_atto), 0), coalesce(sum(fee_nano), 0),
    coalesce(sum(fee_atto), 0), coalesce(sum(escrow_nano), 0), coalesce(sum(escrow_atto), 0),
    (SELECT coalesce(sum(bytes), 0) FROM market_space_tags)
FROM market_funds_tags
HAVING count(*) > 0 OR (SELECT count(*) FROM market_space_tags) > 0;

-- +goose Down
DROP TABLE market_tag_totals;
