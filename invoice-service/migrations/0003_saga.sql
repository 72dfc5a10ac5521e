-- The invoice-service's side of the saga (docs/SAGA.md): orders refused under the credit limit, and
-- credit notes that void invoices (an invoice is never deleted).

-- One answer per order: a second event about a rejected order changes nothing.
create table rejections (
    order_id uuid primary key,
    customer_id uuid not null,
    reason text not null,
    detail text,
    rejected_at timestamptz not null,
    event_id uuid not null references processed_events (event_id),
    correlation_id text
);

-- Gap-free credit note numbers per calendar year (UTC), as for invoices.
create table credit_note_number_counters (
    year integer primary key,
    last_number bigint not null check (last_number > 0)
);

-- At most one credit note per invoice: it credits the invoice's whole total.
create table credit_notes (
    id uuid primary key,
    number text not null unique,
    invoice_id uuid not null unique references invoices (id),
    amount numeric not null check (amount >= 0),
    issued_at timestamptz not null,
    event_id uuid not null references processed_events (event_id)
);

-- The credit check sums a customer's open invoices.
create index invoices_customer on invoices (customer_id);
