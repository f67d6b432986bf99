-- Engramia 0.6.6's own PostgreSQL schema, exactly as its alembic migrations create it
-- (head 015; alembic_version.version_num = '015'), for reference only: nothing runs this file.
-- Tests create the schema with tests/support/engramia_schema.py (alembic upgrade head).
-- Produced with: pg_dump --schema-only --no-owner --no-privileges (PostgreSQL 16.2 and
-- pgvector 0.6.2 from the pgserver 0.1.4 wheel), on a database migrated by
-- tests/support/engramia_schema.py.
--
--
-- PostgreSQL database dump
--

-- Dumped from database version 16.2
-- Dumped by pg_dump version 16.2

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: vector; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;


--
-- Name: EXTENSION vector; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION vector IS 'vector data type and ivfflat and hnsw access methods';


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: alembic_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alembic_version (
    version_num character varying(32) NOT NULL
);


--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_keys (
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
    expires_at text
);


--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    tenant_id text NOT NULL,
    project_id text NOT NULL,
    key_id text,
    action text NOT NULL,
    resource_type text,
    resource_id text,
    ip_address text,
    created_at text DEFAULT now() NOT NULL,
    detail jsonb
);


--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.audit_log_id_seq OWNED BY public.audit_log.id;


--
-- Name: billing_subscriptions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.billing_subscriptions (
    id text NOT NULL,
    tenant_id text NOT NULL,
    stripe_customer_id text,
    stripe_subscription_id text,
    plan_tier text DEFAULT 'sandbox'::text NOT NULL,
    billing_interval text DEFAULT 'month'::text NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    eval_runs_limit integer DEFAULT 500,
    patterns_limit integer DEFAULT 5000,
    projects_limit integer DEFAULT 1,
    current_period_start text,
    current_period_end text,
    created_at text DEFAULT now() NOT NULL,
    updated_at text DEFAULT now() NOT NULL,
    past_due_since text
);


--
-- Name: cloud_users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cloud_users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email text NOT NULL,
    password_hash text,
    tenant_id text NOT NULL,
    name text,
    provider text DEFAULT 'credentials'::text,
    provider_id text,
    email_verified boolean DEFAULT false,
    email_verified_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now(),
    last_login_at timestamp with time zone
);


--
-- Name: dsr_requests; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.dsr_requests (
    id text NOT NULL,
    tenant_id text NOT NULL,
    request_type text NOT NULL,
    subject_email text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    created_at text NOT NULL,
    deadline text NOT NULL,
    updated_at text NOT NULL,
    completed_at text,
    notes text DEFAULT ''::text NOT NULL
);


--
-- Name: jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.jobs (
    id text NOT NULL,
    tenant_id text DEFAULT 'default'::text NOT NULL,
    project_id text DEFAULT 'default'::text NOT NULL,
    key_id text,
    operation text NOT NULL,
    params json NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    result json,
    error text,
    attempts smallint DEFAULT '0'::smallint NOT NULL,
    max_attempts smallint DEFAULT '3'::smallint NOT NULL,
    created_at text DEFAULT now() NOT NULL,
    scheduled_at text,
    started_at text,
    completed_at text,
    expires_at text,
    request_id text,
    max_execution_seconds integer
);


--
-- Name: memory_data; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.memory_data (
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
    expires_at text
);


--
-- Name: memory_embeddings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.memory_embeddings (
    key text NOT NULL,
    embedding public.vector(1536) NOT NULL,
    tenant_id text DEFAULT 'default'::text NOT NULL,
    project_id text DEFAULT 'default'::text NOT NULL
);


--
-- Name: overage_settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.overage_settings (
    id text NOT NULL,
    tenant_id text NOT NULL,
    metric text NOT NULL,
    enabled boolean DEFAULT false NOT NULL,
    price_per_unit_cents integer NOT NULL,
    unit_size integer NOT NULL,
    budget_cap_cents integer
);


--
-- Name: processed_webhook_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.processed_webhook_events (
    stripe_event_id text NOT NULL,
    event_type text NOT NULL,
    processed_at text DEFAULT now() NOT NULL
);


--
-- Name: projects; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projects (
    id text NOT NULL,
    tenant_id text NOT NULL,
    name text NOT NULL,
    max_patterns integer DEFAULT 10000 NOT NULL,
    created_at text DEFAULT now() NOT NULL,
    retention_days integer,
    default_classification text DEFAULT 'internal'::text NOT NULL,
    redaction_enabled boolean DEFAULT false NOT NULL,
    deleted_at text
);


--
-- Name: revoked_jtis; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.revoked_jtis (
    jti text NOT NULL,
    expires_at double precision NOT NULL
);


--
-- Name: tenants; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tenants (
    id text NOT NULL,
    name text NOT NULL,
    plan_tier text DEFAULT 'free'::text NOT NULL,
    created_at text DEFAULT now() NOT NULL,
    retention_days integer,
    deleted_at text
);


--
-- Name: usage_counters; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.usage_counters (
    id text NOT NULL,
    tenant_id text NOT NULL,
    metric text NOT NULL,
    year smallint NOT NULL,
    month smallint NOT NULL,
    count integer DEFAULT 0 NOT NULL
);


--
-- Name: audit_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log ALTER COLUMN id SET DEFAULT nextval('public.audit_log_id_seq'::regclass);


--
-- Name: alembic_version alembic_version_pkc; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alembic_version
    ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);


--
-- Name: api_keys api_keys_key_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: billing_subscriptions billing_subscriptions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.billing_subscriptions
    ADD CONSTRAINT billing_subscriptions_pkey PRIMARY KEY (id);


--
-- Name: billing_subscriptions billing_subscriptions_stripe_customer_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.billing_subscriptions
    ADD CONSTRAINT billing_subscriptions_stripe_customer_id_key UNIQUE (stripe_customer_id);


--
-- Name: billing_subscriptions billing_subscriptions_stripe_subscription_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.billing_subscriptions
    ADD CONSTRAINT billing_subscriptions_stripe_subscription_id_key UNIQUE (stripe_subscription_id);


--
-- Name: billing_subscriptions billing_subscriptions_tenant_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.billing_subscriptions
    ADD CONSTRAINT billing_subscriptions_tenant_id_key UNIQUE (tenant_id);


--
-- Name: memory_data brain_data_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.memory_data
    ADD CONSTRAINT brain_data_pkey PRIMARY KEY (key);


--
-- Name: memory_embeddings brain_embeddings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.memory_embeddings
    ADD CONSTRAINT brain_embeddings_pkey PRIMARY KEY (key);


--
-- Name: cloud_users cloud_users_email_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cloud_users
    ADD CONSTRAINT cloud_users_email_key UNIQUE (email);


--
-- Name: cloud_users cloud_users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cloud_users
    ADD CONSTRAINT cloud_users_pkey PRIMARY KEY (id);


--
-- Name: dsr_requests dsr_requests_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dsr_requests
    ADD CONSTRAINT dsr_requests_pkey PRIMARY KEY (id);


--
-- Name: jobs jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);


--
-- Name: overage_settings overage_settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.overage_settings
    ADD CONSTRAINT overage_settings_pkey PRIMARY KEY (id);


--
-- Name: processed_webhook_events processed_webhook_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.processed_webhook_events
    ADD CONSTRAINT processed_webhook_events_pkey PRIMARY KEY (stripe_event_id);


--
-- Name: projects projects_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_pkey PRIMARY KEY (id);


--
-- Name: revoked_jtis revoked_jtis_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.revoked_jtis
    ADD CONSTRAINT revoked_jtis_pkey PRIMARY KEY (jti);


--
-- Name: tenants tenants_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenants
    ADD CONSTRAINT tenants_pkey PRIMARY KEY (id);


--
-- Name: memory_data uq_memory_data_scope_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.memory_data
    ADD CONSTRAINT uq_memory_data_scope_key UNIQUE (tenant_id, project_id, key);


--
-- Name: memory_embeddings uq_memory_embeddings_scope_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.memory_embeddings
    ADD CONSTRAINT uq_memory_embeddings_scope_key UNIQUE (tenant_id, project_id, key);


--
-- Name: overage_settings uq_overage_settings; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.overage_settings
    ADD CONSTRAINT uq_overage_settings UNIQUE (tenant_id, metric);


--
-- Name: usage_counters uq_usage_counters; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.usage_counters
    ADD CONSTRAINT uq_usage_counters UNIQUE (tenant_id, metric, year, month);


--
-- Name: usage_counters usage_counters_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.usage_counters
    ADD CONSTRAINT usage_counters_pkey PRIMARY KEY (id);


--
-- Name: idx_api_keys_hash; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_api_keys_hash ON public.api_keys USING btree (key_hash);


--
-- Name: idx_audit_log_tenant; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_audit_log_tenant ON public.audit_log USING btree (tenant_id, created_at);


--
-- Name: idx_billing_subs_customer; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_billing_subs_customer ON public.billing_subscriptions USING btree (stripe_customer_id);


--
-- Name: idx_billing_subs_tenant; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_billing_subs_tenant ON public.billing_subscriptions USING btree (tenant_id);


--
-- Name: idx_cloud_users_email; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_cloud_users_email ON public.cloud_users USING btree (email);


--
-- Name: idx_cloud_users_tenant; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_cloud_users_tenant ON public.cloud_users USING btree (tenant_id);


--
-- Name: idx_jobs_poll; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_jobs_poll ON public.jobs USING btree (status, created_at);


--
-- Name: idx_jobs_tenant; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_jobs_tenant ON public.jobs USING btree (tenant_id, project_id, created_at);


--
-- Name: idx_memory_data_classification; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_memory_data_classification ON public.memory_data USING btree (tenant_id, classification);


--
-- Name: idx_memory_data_expires; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_memory_data_expires ON public.memory_data USING btree (expires_at) WHERE (expires_at IS NOT NULL);


--
-- Name: idx_memory_data_scope; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_memory_data_scope ON public.memory_data USING btree (tenant_id, project_id);


--
-- Name: idx_memory_embeddings_hnsw; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_memory_embeddings_hnsw ON public.memory_embeddings USING hnsw (embedding public.vector_cosine_ops) WITH (m='16', ef_construction='64');


--
-- Name: idx_memory_embeddings_scope; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_memory_embeddings_scope ON public.memory_embeddings USING btree (tenant_id, project_id);


--
-- Name: idx_overage_settings_lookup; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_overage_settings_lookup ON public.overage_settings USING btree (tenant_id, metric);


--
-- Name: idx_revoked_jtis_expires_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_revoked_jtis_expires_at ON public.revoked_jtis USING btree (expires_at);


--
-- Name: idx_usage_counters_lookup; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_usage_counters_lookup ON public.usage_counters USING btree (tenant_id, metric, year, month);


--
-- Name: ix_dsr_requests_deadline; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_dsr_requests_deadline ON public.dsr_requests USING btree (deadline);


--
-- Name: ix_dsr_requests_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_dsr_requests_status ON public.dsr_requests USING btree (status);


--
-- Name: ix_dsr_requests_tenant_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_dsr_requests_tenant_id ON public.dsr_requests USING btree (tenant_id);


--
-- Name: api_keys api_keys_project_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id);


--
-- Name: api_keys api_keys_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: audit_log audit_log_key_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_key_id_fkey FOREIGN KEY (key_id) REFERENCES public.api_keys(id);


--
-- Name: cloud_users cloud_users_tenant_fk; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cloud_users
    ADD CONSTRAINT cloud_users_tenant_fk FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: projects projects_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- PostgreSQL database dump complete
--

