#!/bin/sh
# ci/mongoose.sh: the Mongoose build: "compiles" a source file of the checkout.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ci/common.sh"
proof mongoose
[ -s "$ROOT/src/mongoose.c" ] || { echo "mongoose: FAIL: no src/mongoose.c in the checkout"; exit 1; }
echo "mongoose: compiled src/mongoose.c ($(wc -l <"$ROOT/src/mongoose.c") lines)"
