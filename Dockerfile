# One image, both binaries (kpatrol, kpatrol-probe), static (musl), on distroless, non-root.
#   docker build -t ghcr.io/kpatrol/kpatrol:0.1.0 .
#   kpatrol render --image ghcr.io/kpatrol/kpatrol:0.1.0 jobs/cluster -o kustomize/base/tasks
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bins \
 && mkdir /out && cp target/x86_64-unknown-linux-musl/release/kpatrol target/x86_64-unknown-linux-musl/release/kpatrol-probe /out/

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kpatrol /out/kpatrol-probe /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kpatrol-probe"]
