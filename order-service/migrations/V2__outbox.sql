-- The relay's outbox table, verbatim from relay/sql/outbox.sql (tests/migrations.rs keeps them equal).
CREATE TABLE IF NOT EXISTS "public"."outbox" (
    "id" uuid PRIMARY KEY,
    "aggregatetype" text NOT NULL,
    "aggregateid" text NOT NULL,
    "type" text NOT NULL,
    "payload" jsonb NOT NULL,
    "headers" jsonb,
    "created_at" timestamptz NOT NULL DEFAULT now()
);
