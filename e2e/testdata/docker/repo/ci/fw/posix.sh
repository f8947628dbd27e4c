#!/bin/sh
# ci/fw/posix.sh: the POSIX firmware build.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/ci/common.sh"
proof posix
cat "$ROOT/src/mongoose.c" "$ROOT/ci/VERSION" >fw-posix.elf
echo "posix: fw-posix.elf $(wc -c <fw-posix.elf) bytes"
