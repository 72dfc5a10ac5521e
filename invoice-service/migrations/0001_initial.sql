-- Invoices, their lines, the per-year invoice number counters, and the events already applied.

create table processed_events (
    -- The relay's event id: a redelivered event finds its row here and changes nothing.
    event_id uuid primary key,
    event_type text not null,
    -- 'invoiced', or 'order-already-invoiced' for a second event about an invoiced order.
    outcome text not null,
    processed_at timestamptz not null default now()
);

-- Gap-free invoice numbers per calendar year (UTC): a sequence would skip a number for every rolled
-- back transaction, and invoice numbering must not have gaps.
create table invoice_number_counters (
    year integer primary key,
    last_number bigint not null check (last_number > 0)
);

create table invoices (
    id uuid primary key,
    number text not null unique,
    -- One invoice per order, whatever events say about it.
    order_id uuid not null unique,
    customer_id uuid not null,
    currency text not null check (currency ~ '^[A-Z]{3}$'),
    total numeric not null check (total >= 0),
    sales_channel text not null,
    order_confirmed_at timestamptz not null,
    issued_at timestamptz not null,
    event_id uuid not null references processed_events (event_id),
    correlation_id text
);

create table invoice_lines (
    invoice_id uuid not null references invoices (id),
    line_no integer not null,
    product_id uuid not null,
    quantity bigint not null check (quantity > 0),
    unit_price numeric not null check (unit_price >= 0),
    line_total numeric not null check (line_total >= 0),
    primary key (invoice_id, line_no)
);
