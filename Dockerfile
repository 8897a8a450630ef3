# sluice in a container: a static-ish release build on Debian, run as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY protocol-tests ./protocol-tests
COPY benches ./benches
RUN cargo build --release --locked --bin sluice

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/sluice sluice && mkdir -p /var/lib/sluice && chown sluice /var/lib/sluice
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
USER sluice
WORKDIR /var/lib/sluice
EXPOSE 9092
# Listen on all interfaces; advertise what clients outside the container should use.
ENTRYPOINT ["sluice", "--listen", "0.0.0.0:9092", "--data-dir", "/var/lib/sluice/data"]
CMD ["--advertise", "localhost:9092"]
