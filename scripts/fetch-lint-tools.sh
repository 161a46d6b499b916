#!/usr/bin/env bash
# Tools the docker-file tests (Category=Cli, DockerFilesTests) run, since no Docker engine is available to CI:
#   docker-compose (Debian's, 1.29): `docker-compose config` validates docker/compose.yaml against the compose schema;
#   dockerfile-utils (npm, the linter behind the VS Code Dockerfile support): `dockerfile-utils lint docker/Dockerfile`;
#   systemd-analyze (Debian's systemd): `systemd-analyze verify` on the unit example in docs/systemd.
# Idempotent; the npm tool goes to .testdata/npm (ignored by git).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dfu_version="0.16.3"
dfu="$here/.testdata/npm/node_modules/.bin/dockerfile-utils"

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "fetch-lint-tools: missing; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x "$dfu" ] || ! grep -q "\"version\": \"$dfu_version\"" "$here/.testdata/npm/node_modules/dockerfile-utils/package.json"; then
  mkdir -p "$here/.testdata/npm"
  npm install --silent --no-save --no-audit --no-fund --prefix "$here/.testdata/npm" "dockerfile-utils@$dfu_version" >/dev/null
fi
echo "fetch-lint-tools: $(docker-compose version --short 2>/dev/null || echo docker-compose), dockerfile-utils $dfu_version"
