-- The invoicing saga (docs/SAGA.md): orders gain the status INVOICED, and a CANCELLED order may have been
-- confirmed before (the saga cancels confirmed and invoiced orders). The status checks of V1 are
-- replaced; the check that CANCELLED goes with cancelled_at stays.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'orders'::regclass AND contype = 'c'
          AND (pg_get_constraintdef(oid) LIKE '%confirmed_at%' OR pg_get_constraintdef(oid) LIKE '%''CREATED''%')
    LOOP
        EXECUTE format('ALTER TABLE orders DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;

ALTER TABLE orders
    ADD CONSTRAINT orders_status_check
        CHECK (status IN ('CREATED', 'CONFIRMED', 'INVOICED', 'CANCELLED')),
    ADD CONSTRAINT orders_confirmed_at_check
        CHECK (CASE status
                   WHEN 'CREATED' THEN confirmed_at IS NULL
                   WHEN 'CANCELLED' THEN true
                   ELSE confirmed_at IS NOT NULL
               END);

-- One saga per order. `version` is the optimistic-locking token: every change is an
-- UPDATE ... WHERE version = <the version read>. `history` is a JSON array of every input the saga
-- took, applied or not, oldest first.
CREATE TABLE saga_instances (
    id uuid PRIMARY KEY,
    order_id uuid NOT NULL UNIQUE REFERENCES orders (id),
    step text NOT NULL
        CHECK (step IN ('INVOICING', 'INVOICED', 'VOIDING', 'CANCELLED', 'VOIDING_LATE_INVOICE')),
    status text NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'COMPENSATING', 'COMPENSATED')),
    deadline timestamptz,
    version bigint NOT NULL CHECK (version >= 1),
    history jsonb NOT NULL CHECK (jsonb_typeof(history) = 'array'),
    -- The correlation id of the request that confirmed the order: every command and compensation the
    -- saga writes carries it, so one id follows the whole saga.
    correlation_id text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- The deadline sweeper reads only sagas that wait for a reply.
CREATE INDEX saga_instances_deadline ON saga_instances (deadline) WHERE deadline IS NOT NULL;
