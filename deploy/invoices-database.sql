-- The invoice-service's database, beside the orders database (POSTGRES_DB) that the order-service writes
-- and the relay streams from. The postgres image runs this once, on a fresh data directory.
CREATE DATABASE invoices;
