-- The Order aggregate: one row per order, one per line. `version` is the optimistic-concurrency token:
-- every state change is an UPDATE ... WHERE version = <the version read>.
CREATE TABLE orders (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('CREATED', 'CONFIRMED', 'CANCELLED')),
    currency char(3) NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    created_at timestamptz NOT NULL,
    confirmed_at timestamptz,
    cancelled_at timestamptz,
    CHECK ((status = 'CONFIRMED') = (confirmed_at IS NOT NULL)),
    CHECK ((status = 'CANCELLED') = (cancelled_at IS NOT NULL))
);

CREATE TABLE order_lines (
    order_id uuid NOT NULL REFERENCES orders (id),
    line_no integer NOT NULL CHECK (line_no >= 0),
    product_id uuid NOT NULL,
    quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    unit_price numeric(12, 2) NOT NULL CHECK (unit_price > 0),
    PRIMARY KEY (order_id, line_no)
);
