#!/usr/bin/env bash
# Builds a static tandem binary and the tandem:local image (FROM scratch).
# Usage: deploy/build-image.sh [IMAGE_TAG]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tag="${1:-tandem:local}"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --bin tandem \
  --target x86_64-unknown-linux-gnu --target-dir "$root/target/static" --manifest-path "$root/Cargo.toml"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$root/target/static/x86_64-unknown-linux-gnu/release/tandem" "$context/tandem"
cp "$root/deploy/Dockerfile" "$context/Dockerfile"
# Mount points owned by the image's user (see Dockerfile); a file in each, as an empty
# directory is not kept by every builder.
for dir in certs ca data; do
  mkdir -p "$context/$dir"
  touch "$context/$dir/.keep"
done
docker build -q -t "$tag" "$context"
