#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian's prometheus (server and
# promtool) and chromium, helm, pint and the checkers in test/tools (Go module proxy),
# pytest and NVIDIA's nvml.h (PyPI), Prometheus 3, Alertmanager and VictoriaMetrics (scripts/setup-go-tools.sh),
# and llama.cpp's llama-server with a tiny model (scripts/setup-llama-server.sh).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.test-tools"
mkdir -p "$TOOLS/bin"

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The container image tests (test/image/image.test.ts): skopeo and umoci read the archive
# `npm run image` writes, as a user's tools would.
need_image_apt=()
command -v skopeo >/dev/null 2>&1 || need_image_apt+=(skopeo)
command -v umoci >/dev/null 2>&1 || need_image_apt+=(umoci)
if [ ${#need_image_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing Debian packages for the image tests: ${need_image_apt[*]}"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_image_apt[@]}" >/dev/null; } \
    || echo "setup: ${need_image_apt[*]} could not be installed; the image tests that need them say they were skipped"
fi
# The Debian package starts a system Prometheus; the tests start their own on loopback ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi

export GOBIN="$TOOLS/bin"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
if [ ! -x "$GOBIN/helm" ]; then
  echo "setup: go install helm"
  go install helm.sh/helm/v3/cmd/helm@v3.21.4
fi
if [ ! -x "$GOBIN/pint" ]; then
  echo "setup: go install pint"
  if ! go install github.com/cloudflare/pint/cmd/pint@v0.87.0; then
    # `go install` also asks the proxy for the module's version list, which it may refuse;
    # building the downloaded module from a writable copy needs only the pinned version.
    echo "setup: building pint from the module cache"
    pint_dir="$(go mod download -json github.com/cloudflare/pint@v0.87.0 2>/dev/null | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    if [ -n "$pint_dir" ]; then
      pint_tmp="$(mktemp -d)"
      cp -r "$pint_dir/." "$pint_tmp" && chmod -R u+w "$pint_tmp"
      (cd "$pint_tmp" && go build -o "$GOBIN/pint" ./cmd/pint) || true
      rm -rf "$pint_tmp"
    fi
    [ -x "$GOBIN/pint" ] || echo "setup: pint could not be installed; its check will say it was skipped"
  fi
fi
# Small Go checkers of our own (test/tools/<name>: dockerfile-check runs BuildKit's Dockerfile
# frontend and linter offline; k8s-strict decodes rendered manifests into the API types).
for dir in test/tools/*/; do
  [ -f "$dir/go.mod" ] || continue
  name="$(basename "$dir")"
  if [ ! -x "$GOBIN/$name" ] || [ "$dir/main.go" -nt "$GOBIN/$name" ] || [ "$dir/go.mod" -nt "$GOBIN/$name" ]; then
    echo "setup: go build $name"
    (cd "$dir" && go build -o "$GOBIN/$name" .) || echo "setup: $name could not be built; its check will say it was skipped"
  fi
done

if ! python3 -c 'import pytest' >/dev/null 2>&1; then
  echo "setup: pip install pytest"
  # Debian's Python refuses system-wide pip installs (PEP 668): fall back to the user site.
  python3 -m pip install -q 'pytest>=7,<9' 2>/dev/null || python3 -m pip install -q --user --break-system-packages 'pytest>=7,<9'
fi
# Prometheus 3 and promtool, Alertmanager, VictoriaMetrics and vmalert from their Go modules.
bash scripts/setup-go-tools.sh || echo "setup: Go tools setup failed; their tests will skip"
# NVIDIA's nvml.h (PyPI nvidia-nvml-dev): the fake libnvidia-ml.so.1 is compiled against it and
# the NVML ABI test checks every size, offset and constant the NVML code uses against it.
NVML_DEV="${HOME}/.cache/ds-exporter/nvml-dev-13.3.29"
if [ ! -f "$NVML_DEV/nvidia/cu13/include/nvml.h" ]; then
  echo "setup: pip install nvidia-nvml-dev==13.3.29 (nvml.h)"
  python3 -m pip install -q --no-deps --target "$NVML_DEV" 'nvidia-nvml-dev==13.3.29' \
    || echo "setup: nvml.h could not be installed; the fake NVML and ABI tests will say they were skipped"
fi
bash scripts/setup-llama-server.sh || echo "setup: llama-server setup failed; its live tests will skip"
echo "setup: tools ready"
