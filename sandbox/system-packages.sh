#!/usr/bin/env bash
# Install the Debian packages of sandbox/system-packages.txt that are missing
# (`apt-get update` first, as a fresh machine needs). A no-op when all are present.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mapfile -t packages < <(grep -Ev '^[[:space:]]*(#|$)' "${here}/system-packages.txt")

missing=()
for package in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "${package}" 2>/dev/null || true)"
  [[ "${status}" == "installed" ]] || missing+=("${package}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages: all ${#packages[@]} present" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "system packages: missing ${missing[*]} and no apt-get here: install them yourself" >&2
  exit 1
fi
if [[ "$(id -u)" -ne 0 ]]; then
  echo "system packages: missing ${missing[*]}; run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "system packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
timeout 600 apt-get update -q
timeout 1200 apt-get install -y -q --no-install-recommends "${missing[@]}"
