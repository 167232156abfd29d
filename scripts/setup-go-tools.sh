#!/usr/bin/env bash
# Servers for the end-to-end tests, built from their Go modules (Go module proxy only):
# Prometheus 3 and promtool, Alertmanager, VictoriaMetrics single-node and vmalert
# (versions in scripts/go-tools.tsv).
#
# Each tool is built into its own folder, cached outside the repository so that every checkout
# on this machine reuses it:
#   ${XDG_CACHE_HOME:-~/.cache}/ds-exporter/go-tools/<name>-<version>/   the binaries
#   ${XDG_CACHE_HOME:-~/.cache}/ds-exporter/go-tools/<name>-build.log     the last build's output
#   ${XDG_CACHE_HOME:-~/.cache}/ds-exporter/go-tools/<name>-<version>.unavailable
#                                          why the last build failed; the tests skip with it
# A folder that holds every binary is reused as it is. A failed build is tried again on the next
# run. Usage: setup-go-tools.sh [name ...] (default: every tool). Always exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ds-exporter/go-tools"
mkdir -p "$CACHE" || { echo "setup: go tools: cannot create $CACHE"; exit 0; }
export GOFLAGS="${GOFLAGS:-} -mod=mod"

say() { echo "setup: $*"; }

# Alertmanager's module ships no built web UI and ui/web.go embeds ui/app/dist, so a plain
# `go install` fails; the API needs none of it: build a writable copy of the module with a
# placeholder page in its place.
build_with_placeholder_ui() { # module version outdir packages...
  local module="$1" version="$2" out="$3"
  shift 3
  local dir tmp
  dir="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] && [ -d "$dir" ] || { echo "go mod download $module@$version gave no folder"; return 1; }
  tmp="$(mktemp -d)"
  cp -r "$dir/." "$tmp" && chmod -R u+w "$tmp" || { rm -rf "$tmp"; return 1; }
  mkdir -p "$tmp/ui/app/dist"
  printf '<!doctype html><title>Alertmanager</title><p>Built without the web UI; the API is served under /api/v2/.</p>\n' \
    >"$tmp/ui/app/dist/index.html"
  local pkg rc=0
  for pkg in "$@"; do
    (cd "$tmp" && go build -o "$out/$(basename "$pkg")" "./$pkg") || { rc=1; break; }
  done
  rm -rf "$tmp"
  return $rc
}

setup_tool() { # name module version packages
  local name="$1" module="$2" version="$3" packages="$4"
  local out="$CACHE/$name-$version" log="$CACHE/$name-build.log" marker="$CACHE/$name-$version.unavailable"
  local pkg missing=0
  for pkg in $packages; do [ -x "$out/$(basename "$pkg")" ] || missing=1; done
  if [ $missing = 0 ]; then
    rm -f "$marker"
    return 0
  fi
  exec 8>"$CACHE/$name.lock"
  command -v flock >/dev/null 2>&1 && flock 8
  missing=0
  for pkg in $packages; do [ -x "$out/$(basename "$pkg")" ] || missing=1; done
  if [ $missing = 1 ]; then
    if ! command -v go >/dev/null 2>&1; then
      echo "no Go toolchain on PATH" >"$marker"
      say "$name NOT available, its tests will skip: no Go toolchain on PATH"
      exec 8>&-
      return 0
    fi
    say "building $name $version from its Go module (log: $log); this can take minutes"
    local t0=$SECONDS ok=1
    mkdir -p "$out"
    {
      if [ "$name" = alertmanager ]; then
        # shellcheck disable=SC2086
        build_with_placeholder_ui "$module" "$version" "$out" $packages
      else
        local args=()
        for pkg in $packages; do args+=("$module/$pkg@$version"); done
        GOBIN="$out" nice go install "${args[@]}"
      fi
      echo "rc=$?"
    } >"$log" 2>&1
    for pkg in $packages; do [ -x "$out/$(basename "$pkg")" ] || ok=0; done
    if [ $ok = 0 ]; then
      echo "the $name $version build failed (see $log)" >"$marker"
      say "$name NOT available, its tests will skip: the build failed (see $log)"
      exec 8>&-
      return 0
    fi
    say "built $name in $((SECONDS - t0)) s ($out)"
  fi
  rm -f "$marker"
  exec 8>&-
}

want=("$@")
while IFS=$'\t' read -r name module version packages; do
  case "$name" in '' | '#'*) continue ;; esac
  if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != *" $name "* ]]; then continue; fi
  setup_tool "$name" "$module" "$version" "$packages"
done <scripts/go-tools.tsv
exit 0
