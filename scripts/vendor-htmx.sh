#!/usr/bin/env bash
# Vendor htmx from the npm registry and check it against the pinned checksum.
# Run once when upgrading; commit the file it writes (no npm at deploy or CI time).
set -euo pipefail
cd "$(dirname "$0")/.."
V=2.0.11
SHA=d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@$V" >/dev/null && tar xzf "htmx.org-$V.tgz")
cp "$tmp/package/dist/htmx.min.js" "static/vendor/htmx-$V.min.js"
echo "$SHA  static/vendor/htmx-$V.min.js" | sha256sum -c -
