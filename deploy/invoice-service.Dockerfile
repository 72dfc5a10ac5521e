# invoice-service container image: the reference consumer, HTTP on 8081, invoices from OrderConfirmed
# events read from Kafka, RabbitMQ or Redis Streams.
#
# Build from the workspace root (docker-compose.yml does this):
#   docker build -f deploy/invoice-service.Dockerfile -t invoice-service .
# Configure it with DATABASE_URL (required), MESSAGING_MODE (kafka|rabbitmq|redis),
# KAFKA_BOOTSTRAP_SERVERS, RABBITMQ_URL, REDIS_URL and INVOICE_SERVICE_* variables, or mount a TOML file
# and set INVOICE_SERVICE_CONFIG (invoice-service/README.md). It migrates its database at every start.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# The whole workspace: cargo needs every member's manifest. invoice-service.Dockerfile.dockerignore keeps
# target/ and .git out of the build context (BuildKit reads it; the legacy builder reads only a root
# .dockerignore).
COPY . .
# rdkafka-sys builds its bundled librdkafka from source with the C toolchain this image already has.
RUN cargo build -p invoice-service --release --locked \
 && install -D -m 0755 target/release/invoice-service /out/invoice-service

FROM debian:bookworm-slim
# libssl3: librdkafka's TLS and SASL/SCRAM, linked whether or not messaging.kafka.properties turns them
# on; ca-certificates: system roots for Kafka over SSL. libz is in the base image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin invoice-service
COPY --from=builder /out/invoice-service /usr/local/bin/invoice-service
USER 10001:10001
ENV INVOICE_SERVICE_ADDR=0.0.0.0:8081
EXPOSE 8081
# SIGTERM stops consuming; a message not yet acknowledged is delivered again later, and is a no-op if its
# invoice was already committed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["invoice-service"]
