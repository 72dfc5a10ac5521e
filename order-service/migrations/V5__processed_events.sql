-- The invoice-service's replies already taken by the order-service's sagas, by the relay's event id: a
-- redelivered reply finds its row here and changes nothing. Written in the transaction that applies
-- the reply.
CREATE TABLE processed_events (
    event_id uuid PRIMARY KEY,
    event_type text NOT NULL,
    order_id uuid NOT NULL,
    -- How the saga took it: applied, duplicate, late, out-of-order.
    outcome text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
