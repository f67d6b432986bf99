-- Several engram runs into one database (`engram migrate --shard I/N`, or runs for different
-- OpenAI projects): who each run is, whether it is still alive and loading, and how it ended.
-- A run is alive while its session holds the advisory lock (ENGRAM_RUN, lock_key): PostgreSQL
-- releases it when the process dies, so no heartbeat has to time out (heartbeat_at is for people).
ALTER TABLE engram_runs
    ADD COLUMN shard text,
    ADD COLUMN host text,
    ADD COLUMN pid integer,
    ADD COLUMN lock_key integer,
    ADD COLUMN heartbeat_at timestamptz,
    -- True between dropping (or joining the drop of) the HNSW index and this run's end: the
    -- last live loader to finish rebuilds it.
    ADD COLUMN loading boolean NOT NULL DEFAULT false,
    ADD COLUMN threads_listed bigint,
    ADD COLUMN failed_at timestamptz,
    ADD COLUMN error text;
