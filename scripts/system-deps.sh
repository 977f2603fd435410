#!/usr/bin/env bash
# Installs (once) the system packages Cairn's build needs: llama.cpp, vendored by the
# llama-cpp-2 crate, is compiled with cmake and clang, and its bindings need libclang.
set -euo pipefail
have_libclang() { compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null || compgen -G "/usr/lib/*/libclang*.so*" >/dev/null; }
if command -v cmake >/dev/null && command -v clang >/dev/null && have_libclang; then
  exit 0
fi
echo "[system-deps.sh] installing cmake, clang and libclang-dev (Debian packages)" >&2
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake clang libclang-dev >/dev/null
