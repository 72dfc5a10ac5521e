# order-service container image: the reference producer, HTTP on 8080, its events in the outbox table.
#
# Build from the workspace root (docker-compose.yml does this):
#   docker build -f deploy/order-service.Dockerfile -t order-service .
# Configure it with DATABASE_URL (required), ORDER_SERVICE_ADDR, DATABASE_POOL_SIZE, DATABASE_WAIT_SECS,
# LOG_FORMAT (text|json), SAGA_TIMEOUT_SECS and SAGA_SWEEP_INTERVAL_MS (unset: saga deadlines are not
# enforced), and for the saga's replies MESSAGING_MODE (kafka|rabbitmq|redis; unset: not consumed),
# REPLIES_DESTINATION, REPLIES_CONSUMER, KAFKA_BOOTSTRAP_SERVERS, RABBITMQ_URL, REDIS_URL. It migrates its
# database, outbox table included, at every start.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# The whole workspace: cargo needs every member's manifest. order-service.Dockerfile.dockerignore keeps
# target/ and .git out of the build context (BuildKit reads it; the legacy builder reads only a root
# .dockerignore).
COPY . .
# rdkafka-sys (the consumer of the saga's replies) builds its bundled librdkafka from source with the C
# toolchain this image already has.
RUN cargo build -p order-service --release --locked \
 && install -D -m 0755 target/release/order-service /out/order-service

FROM debian:bookworm-slim
# libssl3: librdkafka's TLS and SASL/SCRAM, linked whether or not Kafka is used; ca-certificates: system
# roots for amqps://, rediss:// and Kafka over SSL. libz is in the base image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin order-service
COPY --from=builder /out/order-service /usr/local/bin/order-service
USER 10001:10001
ENV ORDER_SERVICE_ADDR=0.0.0.0:8080
EXPOSE 8080
# SIGTERM stops accepting requests and lets those in flight finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["order-service"]
