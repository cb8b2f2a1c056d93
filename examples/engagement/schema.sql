-- The source tables of the engagement pipeline, as the application's
-- PostgreSQL holds them and Debezium captures them (topics
-- <prefix>.public.content and <prefix>.public.engagement_events).
-- engagement-generator --postgres=... creates them (IF NOT EXISTS) and
-- inserts the same rows it publishes.

CREATE TABLE IF NOT EXISTS content (
  id             UUID PRIMARY KEY,
  slug           TEXT UNIQUE NOT NULL,
  title          TEXT NOT NULL,
  content_type   TEXT NOT NULL CHECK (content_type IN ('podcast', 'newsletter', 'video')),
  length_seconds INT NULL,
  publish_ts     TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS engagement_events (
  id          BIGSERIAL PRIMARY KEY,
  content_id  UUID NOT NULL,
  user_id     UUID NOT NULL,
  event_type  TEXT NOT NULL CHECK (event_type IN ('play', 'pause', 'finish', 'click')),
  event_ts    TIMESTAMPTZ NOT NULL,
  duration_ms INT NULL,
  device      TEXT NOT NULL,
  raw_payload JSONB
);

-- Debezium needs the whole old row of content updates to see what changed.
ALTER TABLE content REPLICA IDENTITY FULL;
