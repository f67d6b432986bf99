-- engram's note of the indexes it dropped for a bulk load ([target] index_strategy), written in
-- the same transaction as the DROP INDEX and deleted in the same transaction as the rebuild:
-- while a row is here the index is missing, and the next engram run rebuilds it first.
CREATE TABLE engram_dropped_indexes (
    index_name text PRIMARY KEY,
    table_name text NOT NULL,
    -- pg_indexes.indexdef: the exact CREATE INDEX statement, name and parameters included.
    definition text NOT NULL,
    run_id text NOT NULL,
    dropped_at timestamptz NOT NULL DEFAULT now()
);
