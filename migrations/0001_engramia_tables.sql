-- Engramia's tables, for a database that has none yet (never run against a database that holds
-- Engramia's own schema: the sink applies this migration only when memory_data, memory_embeddings,
-- tenants, projects and audit_log are all absent, or when it applied it before).
--
-- Columns, keys, defaults, indexes and constraint names are exactly those of Engramia 0.6.6 at
-- alembic head 015 (tests/support/engramia_015_schema.sql), including the bare-key primary keys
-- (brain_data_pkey / brain_embeddings_pkey, named after the tables' old names) beside the
-- (tenant_id, project_id, key) unique constraints. vector(1536) is the size Engramia 0.6.6's
-- PostgresStorage requires (its embedding_dim).
--
-- api_keys is created too, so that audit_log.key_id keeps its foreign key (and API keys can be
-- added as `engramia keys bootstrap` does). No alembic_version row is written: see
-- docs/postgres-target.md ("Empty database").

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE memory_data (
    key text NOT NULL,
    data json NOT NULL,
    updated_at text DEFAULT now() NOT NULL,
    tenant_id text DEFAULT 'default'::text NOT NULL,
    project_id text DEFAULT 'default'::text NOT NULL,
    classification text DEFAULT 'internal'::text NOT NULL,
    source text,
    run_id text,
    author text,
    redacted boolean DEFAULT false NOT NULL,
    expires_at text,
    CONSTRAINT brain_data_pkey PRIMARY KEY (key),
    CONSTRAINT uq_memory_data_scope_key UNIQUE (tenant_id, project_id, key)
);

CREATE INDEX idx_memory_data_classification ON memory_data USING btree (tenant_id, classification);
CREATE INDEX idx_memory_data_expires ON memory_data USING btree (expires_at) WHERE (expires_at IS NOT NULL);
CREATE INDEX idx_memory_data_scope ON memory_data USING btree (tenant_id, project_id);

CREATE TABLE memory_embeddings (
    key text NOT NULL,
    embedding vector(1536) NOT NULL,
    tenant_id text DEFAULT 'default'::text NOT NULL,
    project_id text DEFAULT 'default'::text NOT NULL,
    CONSTRAINT brain_embeddings_pkey PRIMARY KEY (key),
    CONSTRAINT uq_memory_embeddings_scope_key UNIQUE (tenant_id, project_id, key)
);

CREATE INDEX idx_memory_embeddings_hnsw ON memory_embeddings USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='64');
CREATE INDEX idx_memory_embeddings_scope ON memory_embeddings USING btree (tenant_id, project_id);

CREATE TABLE tenants (
    id text NOT NULL,
    name text NOT NULL,
    plan_tier text DEFAULT 'free'::text NOT NULL,
    created_at text DEFAULT now() NOT NULL,
    retention_days integer,
    deleted_at text,
    CONSTRAINT tenants_pkey PRIMARY KEY (id)
);

CREATE TABLE projects (
    id text NOT NULL,
    tenant_id text NOT NULL,
    name text NOT NULL,
    max_patterns integer DEFAULT 10000 NOT NULL,
    created_at text DEFAULT now() NOT NULL,
    retention_days integer,
    default_classification text DEFAULT 'internal'::text NOT NULL,
    redaction_enabled boolean DEFAULT false NOT NULL,
    deleted_at text,
    CONSTRAINT projects_pkey PRIMARY KEY (id),
    CONSTRAINT projects_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id)
);

-- Engramia's migration 003 seeds the default scope for single-tenant deployments; so do we.
INSERT INTO tenants (id, name) VALUES ('default', 'Default');
INSERT INTO projects (id, tenant_id, name) VALUES ('default', 'default', 'default');

CREATE TABLE api_keys (
    id text NOT NULL,
    tenant_id text NOT NULL,
    project_id text NOT NULL,
    name text NOT NULL,
    key_prefix text NOT NULL,
    key_hash text NOT NULL,
    role text DEFAULT 'editor'::text NOT NULL,
    max_patterns integer,
    created_at text DEFAULT now() NOT NULL,
    last_used_at text,
    revoked_at text,
    expires_at text,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects(id),
    CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id)
);

CREATE INDEX idx_api_keys_hash ON api_keys USING btree (key_hash);

CREATE SEQUENCE audit_log_id_seq START WITH 1 INCREMENT BY 1 NO MINVALUE NO MAXVALUE CACHE 1;

CREATE TABLE audit_log (
    id bigint DEFAULT nextval('audit_log_id_seq'::regclass) NOT NULL,
    tenant_id text NOT NULL,
    project_id text NOT NULL,
    key_id text,
    action text NOT NULL,
    resource_type text,
    resource_id text,
    ip_address text,
    created_at text DEFAULT now() NOT NULL,
    detail jsonb,
    CONSTRAINT audit_log_pkey PRIMARY KEY (id),
    CONSTRAINT audit_log_key_id_fkey FOREIGN KEY (key_id) REFERENCES api_keys(id)
);

ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;

CREATE INDEX idx_audit_log_tenant ON audit_log USING btree (tenant_id, created_at);
