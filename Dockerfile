# One image for every AuroraChat binary (gateway, consumer).
#   docker build -t aurorachat .
#   docker run -p 8080:8080 -v aurora-data:/data aurorachat            # embedded mode
#   docker run aurorachat aurora-consumer                              # fan-out tier
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev zlib1g-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p aurora-gateway -p aurora-consumer \
 && cp target/release/aurora-gateway target/release/aurora-consumer /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin aurora \
 && mkdir /data && chown 10001:10001 /data
COPY --from=build /usr/local/bin/aurora-gateway /usr/local/bin/aurora-consumer /usr/local/bin/
USER 10001:10001
ENV AURORA_LISTEN=0.0.0.0:8080 \
    AURORA_DATA_DIR=/data \
    AURORA_CONSUMER_LISTEN=0.0.0.0:9100 \
    AURORA_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080 9100
ENTRYPOINT ["/usr/local/bin/aurora-gateway"]
