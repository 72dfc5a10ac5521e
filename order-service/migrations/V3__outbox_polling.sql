-- What the relay's polling mode needs, verbatim from relay/sql/outbox_polling.sql (tests/migrations.rs keeps them equal).
ALTER TABLE "public"."outbox" ADD COLUMN IF NOT EXISTS "seq" bigint GENERATED ALWAYS AS IDENTITY, ADD COLUMN IF NOT EXISTS "published_at" timestamptz;
CREATE INDEX IF NOT EXISTS "outbox_unpublished" ON "public"."outbox" ("seq") WHERE "published_at" IS NULL;
