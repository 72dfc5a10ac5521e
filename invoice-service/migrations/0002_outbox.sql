-- The invoice-service's own outbox, for the saga's replies (docs/SAGA.md), which a second relay publishes:
-- relay/sql/outbox.sql and relay/sql/outbox_polling.sql verbatim (tests/it/saga.rs keeps them equal).
CREATE TABLE IF NOT EXISTS "public"."outbox" (
    "id" uuid PRIMARY KEY,
    "aggregatetype" text NOT NULL,
    "aggregateid" text NOT NULL,
    "type" text NOT NULL,
    "payload" jsonb NOT NULL,
    "headers" jsonb,
    "created_at" timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE "public"."outbox" ADD COLUMN IF NOT EXISTS "seq" bigint GENERATED ALWAYS AS IDENTITY, ADD COLUMN IF NOT EXISTS "published_at" timestamptz;
CREATE INDEX IF NOT EXISTS "outbox_unpublished" ON "public"."outbox" ("seq") WHERE "published_at" IS NULL;
