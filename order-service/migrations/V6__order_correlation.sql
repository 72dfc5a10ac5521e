-- The correlation id an order was placed under: a later request about the order that carries no
-- X-Correlation-Id of its own continues under it, so that one id follows the order and its saga
-- through both services' logs. NULL for orders placed before this migration.
ALTER TABLE orders ADD COLUMN correlation_id text;
