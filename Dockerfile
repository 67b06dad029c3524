# llmtap proxy image: multi-stage, static-ish release binary on a distroless runtime, non-root.
#   docker build -t llmtap:local .
#   docker run -p 8421:8421 llmtap:local          # proxy on :8421, JSONL in /data
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p llmtap-cli \
    && install -D -m 0755 target/release/llmtap /out/llmtap \
    && mkdir -p /out/data

# distroless/cc ships glibc, libgcc and CA certificates (for https upstreams) and nothing else:
# no shell, no package manager. `nonroot` is uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/llmtap /usr/local/bin/llmtap
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV LLMTAP_LISTEN=0.0.0.0:8421 \
    LLMTAP_JSONL=/data/traces.jsonl
EXPOSE 8421
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/llmtap"]
CMD ["proxy"]
