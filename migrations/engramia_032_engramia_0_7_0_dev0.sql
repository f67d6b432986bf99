-- Engramia's PostgreSQL schema at alembic revision 032 (Engramia 0.7.0.dev0).
-- Generated, not written by hand: alembic's offline mode (`alembic upgrade REVISION --sql`)
-- over the migrations inside the Engramia wheel, output unchanged below this header.
-- Source: Engramia GitHub main at commit 9ea12fb (tests/support/wheels/engramia-0.7.0.dev0-py3-none-any.whl, sha256 c7b9685b574901635c802d8d8a5a531c9a0704cc84eaf3e40462df6f23303cf6); alembic 1.20.1, SQLAlchemy 2.1.9.
-- Command: .cache/venv-engramia07/bin/python tests/support/engramia_offline_sql.py 032
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

-- Running upgrade 015 -> 016

CREATE TABLE email_verification_tokens (
            token_hash TEXT PRIMARY KEY,
            user_id UUID NOT NULL REFERENCES cloud_users(id) ON DELETE CASCADE,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            expires_at TIMESTAMPTZ NOT NULL,
            consumed_at TIMESTAMPTZ
        );

CREATE INDEX idx_email_verif_user ON email_verification_tokens(user_id);

CREATE INDEX idx_email_verif_expires ON email_verification_tokens(expires_at);

ALTER TABLE cloud_users ADD COLUMN reminder_sent_at TIMESTAMP WITH TIME ZONE;

UPDATE alembic_version SET version_num='016' WHERE alembic_version.version_num = '015';

-- Running upgrade 016 -> 017

ALTER TABLE api_keys
        ALTER COLUMN expires_at TYPE TIMESTAMPTZ
        USING (
            CASE
                WHEN expires_at IS NULL OR expires_at = '' THEN NULL
                ELSE expires_at::timestamptz
            END
        );

UPDATE alembic_version SET version_num='017' WHERE alembic_version.version_num = '016';

-- Running upgrade 017 -> 018

ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_key_id_fkey;

UPDATE alembic_version SET version_num='018' WHERE alembic_version.version_num = '017';

-- Running upgrade 018 -> 019

ALTER TABLE memory_data DROP CONSTRAINT IF EXISTS brain_data_pkey;

ALTER TABLE memory_data DROP CONSTRAINT IF EXISTS memory_data_pkey;

ALTER TABLE memory_data DROP CONSTRAINT IF EXISTS uq_memory_data_scope_key;

ALTER TABLE memory_data ADD PRIMARY KEY (tenant_id, project_id, key);

ALTER TABLE memory_embeddings DROP CONSTRAINT IF EXISTS brain_embeddings_pkey;

ALTER TABLE memory_embeddings DROP CONSTRAINT IF EXISTS memory_embeddings_pkey;

ALTER TABLE memory_embeddings DROP CONSTRAINT IF EXISTS uq_memory_embeddings_scope_key;

ALTER TABLE memory_embeddings ADD PRIMARY KEY (tenant_id, project_id, key);

UPDATE alembic_version SET version_num='019' WHERE alembic_version.version_num = '018';

-- Running upgrade 019 -> 020

ALTER TABLE billing_subscriptions ADD COLUMN cancel_at_period_end BOOLEAN DEFAULT false NOT NULL;

UPDATE alembic_version SET version_num='020' WHERE alembic_version.version_num = '019';

-- Running upgrade 020 -> 021

CREATE TABLE account_deletion_requests (
            token_hash TEXT PRIMARY KEY,
            user_id UUID NOT NULL REFERENCES cloud_users(id) ON DELETE CASCADE,
            reason TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            expires_at TIMESTAMPTZ NOT NULL,
            consumed_at TIMESTAMPTZ
        );

CREATE INDEX idx_account_deletion_user ON account_deletion_requests(user_id);

CREATE INDEX idx_account_deletion_expires ON account_deletion_requests(expires_at);

ALTER TABLE cloud_users ADD COLUMN deleted_at TIMESTAMP WITH TIME ZONE;

ALTER TABLE cloud_users ADD COLUMN deletion_reason TEXT;

CREATE INDEX idx_cloud_users_deleted_at ON cloud_users(deleted_at) WHERE deleted_at IS NOT NULL;

UPDATE alembic_version SET version_num='021' WHERE alembic_version.version_num = '020';

-- Running upgrade 021 -> 022

ALTER TABLE audit_log ALTER COLUMN project_id DROP NOT NULL;

UPDATE alembic_version SET version_num='022' WHERE alembic_version.version_num = '021';

-- Running upgrade 022 -> 023

CREATE TABLE tenant_credentials (
            id                    TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
            tenant_id             TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            provider              TEXT NOT NULL,
            purpose               TEXT NOT NULL,
            encrypted_key         BYTEA NOT NULL,
            nonce                 BYTEA NOT NULL,
            auth_tag              BYTEA NOT NULL,
            key_version           SMALLINT NOT NULL DEFAULT 1,
            key_fingerprint       TEXT NOT NULL,
            base_url              TEXT,
            default_model         TEXT,
            default_embed_model   TEXT,
            role_models           JSONB,
            status                TEXT NOT NULL DEFAULT 'active',
            last_used_at          TIMESTAMPTZ,
            last_validated_at     TIMESTAMPTZ,
            last_validation_error TEXT,
            created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by            TEXT NOT NULL,
            updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
        );

CREATE UNIQUE INDEX uq_tenant_credentials_provider_purpose ON tenant_credentials (tenant_id, provider, purpose);

CREATE INDEX idx_tenant_credentials_tenant ON tenant_credentials (tenant_id);

CREATE INDEX idx_tenant_credentials_status ON tenant_credentials (status) WHERE status != 'active';

ALTER TABLE tenant_credentials
        ADD CONSTRAINT ck_tenant_credentials_provider
        CHECK (provider IN ('openai', 'anthropic', 'gemini', 'ollama', 'openai_compat'));

ALTER TABLE tenant_credentials
        ADD CONSTRAINT ck_tenant_credentials_purpose
        CHECK (purpose IN ('llm', 'embedding', 'both'));

ALTER TABLE tenant_credentials
        ADD CONSTRAINT ck_tenant_credentials_status
        CHECK (status IN ('active', 'revoked', 'invalid'));

UPDATE alembic_version SET version_num='023' WHERE alembic_version.version_num = '022';

-- Running upgrade 023 -> 024

UPDATE billing_subscriptions SET plan_tier = 'developer' WHERE plan_tier = 'sandbox';

UPDATE tenants SET plan_tier = 'developer' WHERE plan_tier = 'sandbox';

ALTER TABLE billing_subscriptions ALTER COLUMN plan_tier SET DEFAULT 'developer';

ALTER TABLE tenants ALTER COLUMN plan_tier SET DEFAULT 'developer';

UPDATE alembic_version SET version_num='024' WHERE alembic_version.version_num = '023';

-- Running upgrade 024 -> 025

ALTER TABLE tenant_credentials ADD COLUMN failover_chain JSONB;

UPDATE alembic_version SET version_num='025' WHERE alembic_version.version_num = '024';

-- Running upgrade 025 -> 026

ALTER TABLE tenant_credentials ADD COLUMN role_cost_limits JSONB;

CREATE TABLE role_spend_counters (
            tenant_id     TEXT NOT NULL,
            credential_id TEXT NOT NULL REFERENCES tenant_credentials(id) ON DELETE CASCADE,
            role          TEXT NOT NULL,
            month         CHAR(7) NOT NULL,
            spend_cents   BIGINT NOT NULL DEFAULT 0,
            tokens_in     BIGINT NOT NULL DEFAULT 0,
            tokens_out    BIGINT NOT NULL DEFAULT 0,
            updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, credential_id, role, month)
        );

CREATE INDEX idx_role_spend_counters_tenant_month ON role_spend_counters (tenant_id, month);

UPDATE alembic_version SET version_num='026' WHERE alembic_version.version_num = '025';

-- Running upgrade 026 -> 027

CREATE TABLE backup_download_log (
            id              TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
            tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            requested_by    TEXT NOT NULL,
            requested_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
            status          TEXT NOT NULL,
            bytes_streamed  BIGINT NOT NULL DEFAULT 0,
            tables_exported INTEGER NOT NULL DEFAULT 0,
            error_message   TEXT,
            CONSTRAINT backup_download_log_status_check
                CHECK (status IN ('success', 'failed', 'in_progress'))
        );

CREATE INDEX ix_backup_download_log_tenant_recent_success
        ON backup_download_log (tenant_id, requested_at DESC)
        WHERE status = 'success';

CREATE INDEX ix_backup_download_log_tenant_all
        ON backup_download_log (tenant_id, requested_at DESC);

UPDATE alembic_version SET version_num='027' WHERE alembic_version.version_num = '026';

-- Running upgrade 027 -> 028

ALTER TABLE tenant_credentials RENAME COLUMN encrypted_key TO ciphertext_blob;

ALTER TABLE tenant_credentials ADD COLUMN backend TEXT NOT NULL DEFAULT 'local' CHECK (backend IN ('local', 'vault'));

CREATE INDEX idx_tenant_credentials_backend ON tenant_credentials (backend);

UPDATE alembic_version SET version_num='028' WHERE alembic_version.version_num = '027';

-- Running upgrade 028 -> 029

CREATE TABLE waitlist_requests (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            email TEXT NOT NULL,
            name TEXT NOT NULL,
            plan_interest TEXT NOT NULL
                CHECK (plan_interest IN ('developer','pro','team','business','enterprise')),
            country TEXT NOT NULL,
            use_case TEXT,
            company_name TEXT,
            referral_source TEXT,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending','approved','rejected')),
            rejection_reason TEXT,
            tenant_id TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            approved_at TIMESTAMPTZ,
            rejected_at TIMESTAMPTZ
        );

CREATE INDEX idx_waitlist_status ON waitlist_requests(status, created_at);

CREATE INDEX idx_waitlist_email ON waitlist_requests(email);

ALTER TABLE cloud_users ADD COLUMN must_change_password BOOLEAN DEFAULT false NOT NULL;

UPDATE alembic_version SET version_num='029' WHERE alembic_version.version_num = '028';

-- Running upgrade 029 -> 030

WITH ranked AS (
            SELECT
                id,
                ROW_NUMBER() OVER (
                    PARTITION BY email
                    ORDER BY
                        CASE status WHEN 'approved' THEN 0 ELSE 1 END,
                        created_at,
                        id
                ) AS rn
            FROM waitlist_requests
            WHERE status IN ('pending', 'approved')
        )
        UPDATE waitlist_requests w
        SET
            status = 'rejected',
            rejected_at = COALESCE(w.rejected_at, now()),
            rejection_reason = COALESCE(
                w.rejection_reason,
                'Auto-collapsed: superseded by earlier submission '
                '(waitlist dedup migration 030).'
            )
        FROM ranked r
        WHERE w.id = r.id AND r.rn > 1;

CREATE UNIQUE INDEX uq_waitlist_active
        ON waitlist_requests (email)
        WHERE status IN ('pending', 'approved');

UPDATE alembic_version SET version_num='030' WHERE alembic_version.version_num = '029';

-- Running upgrade 030 -> 031

ALTER TABLE audit_log ADD COLUMN actor_user_id TEXT;

CREATE INDEX idx_audit_log_actor_user ON audit_log (tenant_id, actor_user_id) WHERE actor_user_id IS NOT NULL;

UPDATE alembic_version SET version_num='031' WHERE alembic_version.version_num = '030';

-- Running upgrade 031 -> 032

CREATE TABLE admin_users (
    id SERIAL NOT NULL, 
    email TEXT NOT NULL, 
    password_hash TEXT NOT NULL, 
    totp_secret_ciphertext TEXT, 
    totp_enrolled BOOLEAN DEFAULT false NOT NULL, 
    status TEXT DEFAULT 'active' NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    last_login_at TIMESTAMP WITH TIME ZONE, 
    last_login_ip TEXT, 
    PRIMARY KEY (id), 
    CONSTRAINT uq_admin_users_email UNIQUE (email), 
    CONSTRAINT ck_admin_users_status CHECK (status IN ('active', 'locked', 'disabled'))
);

CREATE TABLE admin_sessions (
    id TEXT NOT NULL, 
    admin_user_id INTEGER NOT NULL, 
    refresh_token_hash TEXT NOT NULL, 
    issued_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    totp_issued_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    user_agent TEXT, 
    ip_address TEXT, 
    revoked_at TIMESTAMP WITH TIME ZONE, 
    PRIMARY KEY (id), 
    FOREIGN KEY(admin_user_id) REFERENCES admin_users (id) ON DELETE CASCADE
);

CREATE INDEX idx_admin_sessions_user_active ON admin_sessions (admin_user_id) WHERE revoked_at IS NULL;

CREATE TABLE admin_login_attempts (
    id BIGSERIAL NOT NULL, 
    email TEXT NOT NULL, 
    ip_address TEXT NOT NULL, 
    success BOOLEAN NOT NULL, 
    stage TEXT NOT NULL, 
    failure_reason TEXT, 
    attempted_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    PRIMARY KEY (id)
);

COMMENT ON COLUMN admin_login_attempts.stage IS '''password'' | ''totp''';

CREATE INDEX idx_admin_login_attempts_email_time ON admin_login_attempts (email, attempted_at);

CREATE INDEX idx_admin_login_attempts_ip_time ON admin_login_attempts (ip_address, attempted_at);

CREATE TABLE admin_audit_log (
    id BIGSERIAL NOT NULL, 
    actor_admin_user_id INTEGER NOT NULL, 
    action TEXT NOT NULL, 
    resource_type TEXT, 
    resource_id TEXT, 
    target_tenant_id INTEGER, 
    status TEXT NOT NULL, 
    environment TEXT NOT NULL, 
    ip_address TEXT NOT NULL, 
    detail JSONB, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    completed_at TIMESTAMP WITH TIME ZONE, 
    PRIMARY KEY (id), 
    FOREIGN KEY(actor_admin_user_id) REFERENCES admin_users (id) ON DELETE RESTRICT
);

COMMENT ON COLUMN admin_audit_log.status IS '''attempted'' | ''succeeded'' | ''failed''';

CREATE INDEX idx_admin_audit_log_action_time ON admin_audit_log (action, created_at);

CREATE INDEX idx_admin_audit_log_actor_time ON admin_audit_log (actor_admin_user_id, created_at);

CREATE INDEX idx_admin_audit_log_target_tenant ON admin_audit_log (target_tenant_id, created_at) WHERE target_tenant_id IS NOT NULL;

UPDATE alembic_version SET version_num='032' WHERE alembic_version.version_num = '031';

COMMIT;

