# Build: docker build -t sinew .
# Run:   docker run -p 6001:6001 -p 9601:9601 sinew
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sinew \
 && strip target/release/sinew

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sinew
COPY --from=build /src/target/release/sinew /usr/local/bin/sinew
USER sinew
WORKDIR /tmp
ENV SINEW_HOST=0.0.0.0 SINEW_PORT=6001 SINEW_METRICS_PORT=9601
EXPOSE 6001 9601
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS http://127.0.0.1:6001/ready || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sinew"]
