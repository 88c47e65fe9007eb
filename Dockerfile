# syntax=docker/dockerfile:1
# Multi-stage build: the release binary on a small Debian base, running as a non-root user.
# CI does not build this image (no Docker engine on our machines); build it with
# `docker build -t secretsync .` where Docker is available.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends gcc make perl && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY crates ./crates
RUN cargo build --release --locked --bin secretsync && strip target/release/secretsync

# Debian slim (not distroless): the GitHub Action entrypoint is a bash script.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin secretsync
COPY --from=build /src/target/release/secretsync /usr/local/bin/secretsync
COPY action/entrypoint.sh /usr/local/bin/secretsync-action
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/secretsync"]
CMD ["--help"]
