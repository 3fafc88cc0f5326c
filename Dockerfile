# syntax=docker/dockerfile:1
# The outboxd image: `docker build -t <registry>/outboxd:0.1.0 .` from the repository root.
#
#   docker run --rm -e DATABASE_URL=postgres://… <image> migrate
#   docker run --rm -e DATABASE_URL=postgres://… -e OUTBOXD_LISTEN=0.0.0.0:9090 \
#     -e OUTBOXD_ADMIN_TOKEN=… -p 9090:9090 <image>          # `run` is the default command
#
# Inside a container OUTBOXD_LISTEN's default (127.0.0.1:9090) is unreachable from outside;
# listening on 0.0.0.0 requires OUTBOXD_ADMIN_TOKEN (the Helm chart in charts/ sets both).
# Builder and runtime use the same Debian release, so the binary's glibc matches.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /build

# Dependencies first, in their own layer: rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin outboxd \
 && rm -rf src

COPY . .
# touch: the sources copied in may be older than the placeholder build above.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin outboxd \
 && objcopy --compress-debug-sections=zlib target/release/outboxd /outboxd \
 && /outboxd --version

FROM debian:${DEBIAN_RELEASE}-slim
ARG RUST_VERSION
# ca-certificates: webhook receivers' TLS certificates are checked against the system roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 outboxd \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin outboxd
COPY --from=builder /outboxd /usr/local/bin/outboxd

LABEL org.opencontainers.image.title="outboxd" \
      org.opencontainers.image.description="Transactional-outbox webhook sidecar for PostgreSQL" \
      org.opencontainers.image.licenses="Apache-2.0"

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 9090
# SIGTERM (the default stop signal): stop claiming, finish in-flight work within
# OUTBOXD_SHUTDOWN_GRACE, hand back the rest, exit 0. outboxd handles it itself as PID 1.
ENTRYPOINT ["outboxd"]
CMD ["run"]
