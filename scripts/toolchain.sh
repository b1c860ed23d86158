#!/usr/bin/env bash
# rust-toolchain.toml pins Rust 1.95.0, the toolchain installed on every
# build machine; no other can be downloaded there. Where rustup knows that
# installed toolchain only as "stable", name it "1.95.0" too (a symbolic
# link in rustup's toolchain directory: `rustup toolchain link` refuses
# release names), so the pin resolves without a download. Does nothing when it already resolves or
# when rustup is not used.
#
# It also installs protoc (Debian's protobuf-compiler) when missing: the
# etcd client's build script compiles etcd's .proto files with it, and a
# fresh machine has none.
set -euo pipefail
PINNED=1.95.0
if ! command -v protoc >/dev/null 2>&1 && [ -z "${PROTOC:-}" ]; then
  echo "installing protoc (protobuf-compiler), needed to build the etcd client"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
fi
command -v rustup >/dev/null || exit 0
if rustup toolchain list | grep -q "^$PINNED-"; then
  exit 0
fi
for candidate in stable "$(rustup default 2>/dev/null | cut -d' ' -f1)"; do
  [ -n "$candidate" ] || continue
  sysroot=$(rustc +"$candidate" --print sysroot 2>/dev/null) || continue
  if "$sysroot/bin/rustc" --version | grep -q "^rustc $PINNED "; then
    host=$("$sysroot/bin/rustc" -vV | sed -n 's/^host: //p')
    ln -s "$sysroot" "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$PINNED-$host"
    echo "rustup: toolchain $PINNED-$host is $sysroot"
    exit 0
  fi
done
echo "Rust $PINNED is not installed (rust-toolchain.toml pins it)" >&2
exit 1
