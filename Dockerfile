# The netpol image: the `netpol` binary (CLI and node agent) with nftables.
# examples/deploy/daemonset.yaml runs it as the agent.
#
#   docker build -t ghcr.io/netpol/netpol:latest .
#
# CI does not build this image (it runs without a container daemon); the
# README says so.

# --- build: the workspace's pinned toolchain and locked dependencies -------
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p policy-cli \
 && install -D -m 0755 target/release/netpol /out/netpol

# --- runtime: Debian slim plus nft --------------------------------------------
FROM docker.io/library/debian:bookworm-slim
# nftables: the agent applies its ruleset with `nft -j -f -`.
# netbase: /etc/protocols and /etc/services, which nft reads.
# ca-certificates: TLS to API servers whose certificate is publicly signed
# (in-cluster, the service account's CA is used).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables netbase ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/netpol /usr/local/bin/netpol
# Programming nftables needs CAP_NET_ADMIN in the effective set, which
# Kubernetes grants only to root: the DaemonSet adds NET_ADMIN, drops every
# other capability, forbids privilege escalation and mounts the root
# filesystem read-only (netpol writes no files).
USER 0:0
ENTRYPOINT ["/usr/local/bin/netpol"]
CMD ["--help"]
