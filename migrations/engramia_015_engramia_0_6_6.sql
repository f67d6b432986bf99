-- Engramia's PostgreSQL schema at alembic revision 015 (Engramia 0.6.6).
-- Generated, not written by hand: alembic's offline mode (`alembic upgrade REVISION --sql`)
-- over the migrations inside the Engramia wheel, output unchanged below this header.
-- Source: PyPI engramia==0.6.6 (engramia-0.6.6-py3-none-any.whl, sha256 25354f5e9df68b95aa7523802b8bc49191ada701e54b584c3d4acfadd99b9b31); alembic 1.20.1, SQLAlchemy 2.1.9.
-- Command: .cache/venv/bin/python tests/support/engramia_offline_sql.py 015
-- Engramia is licensed BUSL-1.1 by its authors; this is the output of its migrations.
--
-- engram runs this file as one script on a database without Engramia's tables (the first
-- write of a run, never a dry run); its BEGIN ... COMMIT makes it all or nothing. It
-- includes CREATE EXTENSION vector and the alembic_version row, so Engramia's own
-- `alembic upgrade head` continues from this revision.

BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 001

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE brain_data (
    key TEXT NOT NULL, 
    data JSON NOT NULL, 
    updated_at TEXT DEFAULT now() NOT NULL, 
    PRIMARY KEY (key)
);

CREATE TABLE brain_embeddings (
    key TEXT NOT NULL, 
    embedding VECTOR(1536) NOT NULL, 
    PRIMARY KEY (key)
);

CREATE INDEX idx_brain_embeddings_hnsw ON brain_embeddings USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

INSERT INTO alembic_version (version_num) VALUES ('001') RETURNING alembic_version.version_num;

-- Running upgrade 001 -> 002

DROP INDEX IF EXISTS idx_brain_embeddings_hnsw;

ALTER TABLE brain_data RENAME TO memory_data;

ALTER TABLE brain_embeddings RENAME TO memory_embeddings;

CREATE INDEX idx_memory_embeddings_hnsw ON memory_embeddings USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

UPDATE alembic_version SET version_num='002' WHERE alembic_version.version_num = '001';

-- Running upgrade 002 -> 003

ALTER TABLE memory_data ADD COLUMN tenant_id TEXT DEFAULT 'default' NOT NULL;

ALTER TABLE memory_data ADD COLUMN project_id TEXT DEFAULT 'default' NOT NULL;

ALTER TABLE memory_embeddings ADD COLUMN tenant_id TEXT DEFAULT 'default' NOT NULL;

ALTER TABLE memory_embeddings ADD COLUMN project_id TEXT DEFAULT 'default' NOT NULL;

CREATE INDEX idx_memory_data_scope ON memory_data (tenant_id, project_id);

CREATE INDEX idx_memory_embeddings_scope ON memory_embeddings (tenant_id, project_id);

CREATE TABLE tenants (
    id TEXT NOT NULL, 
    name TEXT NOT NULL, 
    plan_tier TEXT DEFAULT 'free' NOT NULL, 
    created_at TEXT DEFAULT now() NOT NULL, 
    PRIMARY KEY (id)
);

INSERT INTO tenants (id, name) VALUES ('default', 'Default');

CREATE TABLE projects (
    id TEXT NOT NULL, 
    tenant_id TEXT NOT NULL, 
    name TEXT NOT NULL, 
    max_patterns INTEGER DEFAULT '10000' NOT NULL, 
    created_at TEXT DEFAULT now() NOT NULL, 
    PRIMARY KEY (id), 
    FOREIGN KEY(tenant_id) REFERENCES tenants (id)
);

INSERT INTO projects (id, tenant_id, name) VALUES ('default', 'default', 'default');

CREATE TABLE api_keys (
    id TEXT NOT NULL, 
    tenant_id TEXT NOT NULL, 
    project_id TEXT NOT NULL, 
    name TEXT NOT NULL, 
    key_prefix TEXT NOT NULL, 
    key_hash TEXT NOT NULL, 
    role TEXT DEFAULT 'editor' NOT NULL, 
    max_patterns INTEGER, 
    created_at TEXT DEFAULT now() NOT NULL, 
    last_used_at TEXT, 
    revoked_at TEXT, 
    expires_at TEXT, 
    PRIMARY KEY (id), 
    FOREIGN KEY(tenant_id) REFERENCES tenants (id), 
    FOREIGN KEY(project_id) REFERENCES projects (id), 
    UNIQUE (key_hash)
);

CREATE INDEX idx_api_keys_hash ON api_keys (key_hash);

CREATE TABLE audit_log (
    id BIGSERIAL NOT NULL, 
    tenant_id TEXT NOT NULL, 
    project_id TEXT NOT NULL, 
    key_id TEXT, 
    action TEXT NOT NULL, 
    resource_type TEXT, 
    resource_id TEXT, 
    ip_address TEXT, 
    created_at TEXT DEFAULT now() NOT NULL, 
    PRIMARY KEY (id), 
    FOREIGN KEY(key_id) REFERENCES api_keys (id)
);

CREATE INDEX idx_audit_log_tenant ON audit_log (tenant_id, created_at);

UPDATE alembic_version SET version_num='003' WHERE alembic_version.version_num = '002';

-- Running upgrade 003 -> 004

CREATE TABLE jobs (
    id TEXT NOT NULL, 
    tenant_id TEXT DEFAULT 'default' NOT NULL, 
    project_id TEXT DEFAULT 'default' NOT NULL, 
    key_id TEXT, 
    operation TEXT NOT NULL, 
    params JSON NOT NULL, 
    status TEXT DEFAULT 'pending' NOT NULL, 
    result JSON, 
    error TEXT, 
    attempts SMALLINT DEFAULT '0' NOT NULL, 
    max_attempts SMALLINT DEFAULT '3' NOT NULL, 
    created_at TEXT DEFAULT now() NOT NULL, 
    scheduled_at TEXT, 
    started_at TEXT, 
    completed_at TEXT, 
    expires_at TEXT, 
    PRIMARY KEY (id)
);

CREATE INDEX idx_jobs_poll ON jobs (status, created_at);

CREATE INDEX idx_jobs_tenant ON jobs (tenant_id, project_id, created_at);

UPDATE alembic_version SET version_num='004' WHERE alembic_version.version_num = '003';

-- Running upgrade 004 -> 005

ALTER TABLE jobs ADD COLUMN request_id TEXT;

UPDATE alembic_version SET version_num='005' WHERE alembic_version.version_num = '004';

-- Running upgrade 005 -> 006

ALTER TABLE tenants ADD COLUMN retention_days INTEGER;

ALTER TABLE tenants ADD COLUMN deleted_at TEXT;

ALTER TABLE projects ADD COLUMN retention_days INTEGER;

ALTER TABLE projects ADD COLUMN default_classification TEXT DEFAULT 'internal' NOT NULL;

ALTER TABLE projects ADD COLUMN redaction_enabled BOOLEAN DEFAULT 'false' NOT NULL;

ALTER TABLE projects ADD COLUMN deleted_at TEXT;

ALTER TABLE memory_data ADD COLUMN classification TEXT DEFAULT 'internal' NOT NULL;

ALTER TABLE memory_data ADD COLUMN source TEXT;

ALTER TABLE memory_data ADD COLUMN run_id TEXT;

ALTER TABLE memory_data ADD COLUMN author TEXT;

ALTER TABLE memory_data ADD COLUMN redacted BOOLEAN DEFAULT 'false' NOT NULL;

ALTER TABLE memory_data ADD COLUMN expires_at TEXT;

CREATE INDEX idx_memory_data_expires ON memory_data (expires_at) WHERE expires_at IS NOT NULL;

CREATE INDEX idx_memory_data_classification ON memory_data (tenant_id, classification);

ALTER TABLE audit_log ADD COLUMN detail JSONB;

UPDATE alembic_version SET version_num='006' WHERE alembic_version.version_num = '005';

-- Running upgrade 006 -> 008

CREATE TABLE billing_subscriptions (
    id TEXT NOT NULL, 
    tenant_id TEXT NOT NULL, 
    stripe_customer_id TEXT, 
    stripe_subscription_id TEXT, 
    plan_tier TEXT DEFAULT 'sandbox' NOT NULL, 
    billing_interval TEXT DEFAULT 'month' NOT NULL, 
    status TEXT DEFAULT 'active' NOT NULL, 
    eval_runs_limit INTEGER DEFAULT '500', 
    patterns_limit INTEGER DEFAULT '5000', 
    projects_limit INTEGER DEFAULT '1', 
    current_period_start TEXT, 
    current_period_end TEXT, 
    created_at TEXT DEFAULT now() NOT NULL, 
    updated_at TEXT DEFAULT now() NOT NULL, 
    PRIMARY KEY (id), 
    UNIQUE (tenant_id), 
    UNIQUE (stripe_customer_id), 
    UNIQUE (stripe_subscription_id)
);

CREATE INDEX idx_billing_subs_tenant ON billing_subscriptions (tenant_id);

CREATE INDEX idx_billing_subs_customer ON billing_subscriptions (stripe_customer_id);

CREATE TABLE usage_counters (
    id TEXT NOT NULL, 
    tenant_id TEXT NOT NULL, 
    metric TEXT NOT NULL, 
    year SMALLINT NOT NULL, 
    month SMALLINT NOT NULL, 
    count INTEGER DEFAULT '0' NOT NULL, 
    PRIMARY KEY (id), 
    CONSTRAINT uq_usage_counters UNIQUE (tenant_id, metric, year, month)
);

CREATE INDEX idx_usage_counters_lookup ON usage_counters (tenant_id, metric, year, month);

CREATE TABLE overage_settings (
    id TEXT NOT NULL, 
    tenant_id TEXT NOT NULL, 
    metric TEXT NOT NULL, 
    enabled BOOLEAN DEFAULT 'false' NOT NULL, 
    price_per_unit_cents INTEGER NOT NULL, 
    unit_size INTEGER NOT NULL, 
    budget_cap_cents INTEGER, 
    PRIMARY KEY (id), 
    CONSTRAINT uq_overage_settings UNIQUE (tenant_id, metric)
);

CREATE INDEX idx_overage_settings_lookup ON overage_settings (tenant_id, metric);

UPDATE alembic_version SET version_num='008' WHERE alembic_version.version_num = '006';

-- Running upgrade 008 -> 009

ALTER TABLE memory_data ADD CONSTRAINT uq_memory_data_scope_key UNIQUE (tenant_id, project_id, key);

ALTER TABLE memory_embeddings ADD CONSTRAINT uq_memory_embeddings_scope_key UNIQUE (tenant_id, project_id, key);

UPDATE alembic_version SET version_num='009' WHERE alembic_version.version_num = '008';

-- Running upgrade 009 -> 010

CREATE TABLE dsr_requests (
    id TEXT NOT NULL, 
    tenant_id TEXT NOT NULL, 
    request_type TEXT NOT NULL, 
    subject_email TEXT NOT NULL, 
    status TEXT DEFAULT 'pending' NOT NULL, 
    created_at TEXT NOT NULL, 
    deadline TEXT NOT NULL, 
    updated_at TEXT NOT NULL, 
    completed_at TEXT, 
    notes TEXT DEFAULT '' NOT NULL, 
    PRIMARY KEY (id)
);

CREATE INDEX ix_dsr_requests_tenant_id ON dsr_requests (tenant_id);

CREATE INDEX ix_dsr_requests_status ON dsr_requests (status);

CREATE INDEX ix_dsr_requests_deadline ON dsr_requests (deadline);

UPDATE alembic_version SET version_num='010' WHERE alembic_version.version_num = '009';

-- Running upgrade 010 -> 011

CREATE TABLE processed_webhook_events (
    stripe_event_id TEXT NOT NULL, 
    event_type TEXT NOT NULL, 
    processed_at TEXT DEFAULT now() NOT NULL, 
    PRIMARY KEY (stripe_event_id)
);

UPDATE alembic_version SET version_num='011' WHERE alembic_version.version_num = '010';

-- Running upgrade 011 -> 012

ALTER TABLE billing_subscriptions ADD COLUMN past_due_since TEXT;

UPDATE alembic_version SET version_num='012' WHERE alembic_version.version_num = '011';

-- Running upgrade 012 -> 013

CREATE TABLE cloud_users (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            email TEXT NOT NULL UNIQUE,
            password_hash TEXT,
            tenant_id TEXT NOT NULL,
            name TEXT,
            provider TEXT DEFAULT 'credentials',
            provider_id TEXT,
            email_verified BOOLEAN DEFAULT false,
            email_verified_at TIMESTAMPTZ,
            created_at TIMESTAMPTZ DEFAULT now(),
            last_login_at TIMESTAMPTZ,
            CONSTRAINT cloud_users_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants(id)
        );

CREATE INDEX idx_cloud_users_email ON cloud_users(email);

CREATE INDEX idx_cloud_users_tenant ON cloud_users(tenant_id);

UPDATE alembic_version SET version_num='013' WHERE alembic_version.version_num = '012';

-- Running upgrade 013 -> 014

ALTER TABLE jobs ADD COLUMN max_execution_seconds INTEGER;

UPDATE alembic_version SET version_num='014' WHERE alembic_version.version_num = '013';

-- Running upgrade 014 -> 015

CREATE TABLE revoked_jtis (
    jti TEXT NOT NULL, 
    expires_at FLOAT NOT NULL, 
    PRIMARY KEY (jti)
);

CREATE INDEX idx_revoked_jtis_expires_at ON revoked_jtis (expires_at);

UPDATE alembic_version SET version_num='015' WHERE alembic_version.version_num = '014';

COMMIT;

