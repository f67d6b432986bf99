-- engram's own bookkeeping, beside Engramia's tables and never read by Engramia: which run
-- wrote which pattern, and the content hash it wrote (for later diffing and audits).

CREATE TABLE engram_runs (
    run_id text PRIMARY KEY,
    engram_version text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    -- Where the records came from: the OpenAI base URL, or "replay of DIR".
    source text,
    -- Progress after each committed batch, so that a killed run's successor can say where it
    -- picked up (engram's resume report).
    batches bigint NOT NULL DEFAULT 0,
    records bigint NOT NULL DEFAULT 0,
    last_thread text,
    -- Per scope: {"tenant/project": {"created": n, "updated": n, "replaced": n}}, at the end.
    counts jsonb,
    -- For a run that stopped before finishing: the later run that finished its work.
    completed_by text
);

CREATE TABLE engram_records (
    tenant_id text NOT NULL,
    project_id text NOT NULL,
    key text NOT NULL,
    -- record::content_hash of the pattern JSON and skill tags engram wrote.
    content_hash text NOT NULL,
    -- The skill tags engram registered (or, where the skills registry could not be written,
    -- meant to register: see docs/postgres-target.md, "Skills registry").
    skills jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- The record's origin, e.g. openai-thread:thread_abc (also memory_data.run_id).
    origin text,
    run_id text NOT NULL REFERENCES engram_runs (run_id),
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, project_id, key)
);

CREATE INDEX engram_records_run_id ON engram_records (run_id);
