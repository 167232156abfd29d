#!/usr/bin/env bash
# A live llama.cpp engine for the tests: builds `llama-server` (CPU only, Release, one static
# binary, no web UI, no TLS) from the llama.cpp sources vendored in the llama-cpp-python sdist
# (PyPI), and writes a tiny random-weight GGUF model for it (test/tools/tiny-gguf).
#
# Both are cached outside the repository, in
#   ${XDG_CACHE_HOME:-~/.cache}/ds-exporter/llama-server-<llama-cpp-python version>/
# so that every checkout on this machine reuses them, and linked into
#   .test-tools/bin/llama-server   .test-tools/models/tiny.gguf
# A second run only checks. When something fails this prints one line, writes the reason to
# .test-tools/llama-server.unavailable (the live tests skip with it) and exits 0.
# A failed compile is remembered (the run after says so at once); delete the cache folder to retry.
set -uo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION=0.3.36
GGUF_VERSION=0.19.0
VOCAB=ggml-vocab-llama-spm.gguf

TOOLS="$PWD/.test-tools"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ds-exporter/llama-server-$LLAMA_CPP_PYTHON_VERSION"
UNAVAILABLE="$TOOLS/llama-server.unavailable"
MODEL_SCRIPT="$PWD/test/tools/tiny-gguf/make_tiny_gguf.py"
mkdir -p "$TOOLS/bin" "$TOOLS/models" "$CACHE" || { echo "setup: llama-server: cannot create $CACHE"; exit 0; }

CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  # AVX2/FMA/F16C baseline rather than -march=native: the binary stays usable if the cache
  # folder is copied to another x86-64 host.
  -DGGML_NATIVE=OFF
  -DGGML_OPENMP=OFF
  -DGGML_BLAS=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_APP=OFF
  -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_SERVER=ON
  # No web UI: neither built with npm nor fetched prebuilt at build time.
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_LLGUIDANCE=OFF
)
RECIPE="llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION ${CMAKE_FLAGS[*]}"

say() { echo "setup: llama-server: $*"; }
# One line on stdout, the reason kept for the tests' skip message, exit 0.
unavailable() {
  echo "setup: llama-server NOT available, its live tests will skip: $*"
  echo "$*" >"$UNAVAILABLE"
  exit 0
}
link() { ln -sfn "$1" "$2"; }

# Concurrent runs (several checkouts testing at once) wait for one build instead of racing.
exec 9>"$CACHE.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

# --- llama-server ----------------------------------------------------------------------------
# Downloads and extracts the sdist into $WORK; $SRC is its llama.cpp.
WORK="$CACHE/work"
SRC="$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
fetch_sources() {
  rm -rf "$WORK" && mkdir -p "$WORK"
  say "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist"
  if ! python3 -m pip download -q --no-deps --no-binary :all: -d "$WORK" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >"$CACHE/build.log" 2>&1; then
    rm -rf "$WORK"
    unavailable "the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist could not be downloaded (see $CACHE/build.log)"
  fi
  local sdist
  sdist="$(ls "$WORK"/llama_cpp_python-*.tar.gz 2>/dev/null | head -n1)"
  [ -n "$sdist" ] || unavailable "pip download produced no llama-cpp-python sdist"
  tar -xzf "$sdist" -C "$WORK" || unavailable "the llama-cpp-python sdist could not be extracted"
  [ -f "$SRC/tools/server/CMakeLists.txt" ] || unavailable "no vendor/llama.cpp/tools/server in the sdist"
  # The vendored tree has a dangling .git file (a submodule pointer); without it the build
  # info does not go looking for a repository.
  rm -f "$SRC/.git"
}

binary_ok() { [ -x "$CACHE/llama-server" ] && [ "$(cat "$CACHE/recipe" 2>/dev/null)" = "$RECIPE" ]; }

build_llama_server() {
  if [ -f "$CACHE/build-failed" ] && [ "$(cat "$CACHE/build-failed.recipe" 2>/dev/null)" = "$RECIPE" ]; then
    unavailable "an earlier build failed ($(cat "$CACHE/build-failed")); see $CACHE/build.log, delete $CACHE to retry"
  fi
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  local need=()
  command -v cmake >/dev/null 2>&1 || need+=(cmake)
  command -v g++ >/dev/null 2>&1 || need+=(g++)
  command -v make >/dev/null 2>&1 || command -v ninja >/dev/null 2>&1 || need+=(make)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian packages: ${need[*]}"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null 2>&1 || true
  fi
  if ! command -v cmake >/dev/null 2>&1; then
    python3 -m pip install -q cmake 2>/dev/null || python3 -m pip install -q --user --break-system-packages cmake >/dev/null 2>&1 || true
    export PATH="$HOME/.local/bin:$PATH"
  fi
  command -v cmake >/dev/null 2>&1 || unavailable "cmake could not be installed"
  command -v g++ >/dev/null 2>&1 || unavailable "no C++ compiler (g++ could not be installed)"

  fetch_sources
  cp "$SRC/models/$VOCAB" "$CACHE/$VOCAB.tmp" && mv "$CACHE/$VOCAB.tmp" "$CACHE/$VOCAB"

  local gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  say "building llama-server (CPU, Release) from llama.cpp in llama-cpp-python $LLAMA_CPP_PYTHON_VERSION; this takes several minutes"
  local t0=$SECONDS
  if ! { cmake -S "$SRC" -B "$WORK/build" "${gen[@]}" "${CMAKE_FLAGS[@]}" &&
         cmake --build "$WORK/build" --target llama-server -j2; } >>"$CACHE/build.log" 2>&1; then
    echo "compile failed" >"$CACHE/build-failed"
    echo "$RECIPE" >"$CACHE/build-failed.recipe"
    rm -rf "$WORK"
    unavailable "the llama-server build failed (see $CACHE/build.log)"
  fi
  cp "$WORK/build/bin/llama-server" "$CACHE/llama-server.tmp" && mv "$CACHE/llama-server.tmp" "$CACHE/llama-server" ||
    unavailable "the built llama-server could not be copied into $CACHE"
  echo "$RECIPE" >"$CACHE/recipe"
  rm -f "$CACHE/build-failed" "$CACHE/build-failed.recipe"
  rm -rf "$WORK"
  say "built in $((SECONDS - t0)) s (cached in $CACHE)"
}

binary_ok || build_llama_server
"$CACHE/llama-server" --version >/dev/null 2>&1 || unavailable "$CACHE/llama-server does not run (see $CACHE/build.log)"
link "$CACHE/llama-server" "$TOOLS/bin/llama-server"

# --- tiny model ------------------------------------------------------------------------------
# Written again when its script changes.
model_stamp="$(sha256sum "$MODEL_SCRIPT" | cut -d' ' -f1) $VOCAB"
if [ ! -s "$CACHE/tiny.gguf" ] || [ "$(cat "$CACHE/tiny.gguf.stamp" 2>/dev/null)" != "$model_stamp" ]; then
  if [ ! -f "$CACHE/$VOCAB" ]; then
    # The vocabulary comes with the sdist.
    fetch_sources
    cp "$SRC/models/$VOCAB" "$CACHE/$VOCAB" || unavailable "no models/$VOCAB in the sdist"
    rm -rf "$WORK"
  fi
  write_model() { python3 "$MODEL_SCRIPT" --vocab "$CACHE/$VOCAB" --out "$CACHE/tiny.gguf.tmp" >/dev/null 2>"$CACHE/model.log"; }
  if ! write_model; then
    # No gguf package, or one too old for the script: install the pinned one and try again.
    say "pip install gguf==$GGUF_VERSION"
    # Debian's Python refuses system-wide pip installs (PEP 668): fall back to the user site.
    python3 -m pip install -q "gguf==$GGUF_VERSION" >/dev/null 2>&1 ||
      python3 -m pip install -q --user --break-system-packages "gguf==$GGUF_VERSION" >/dev/null 2>&1 ||
      unavailable "the gguf Python package could not be installed"
    write_model || unavailable "the tiny model could not be written (see $CACHE/model.log)"
  fi
  mv "$CACHE/tiny.gguf.tmp" "$CACHE/tiny.gguf" && echo "$model_stamp" >"$CACHE/tiny.gguf.stamp"
  say "wrote the tiny model $CACHE/tiny.gguf"
fi
link "$CACHE/tiny.gguf" "$TOOLS/models/tiny.gguf"

rm -f "$UNAVAILABLE"
say "ready ($TOOLS/bin/llama-server, $TOOLS/models/tiny.gguf)"
