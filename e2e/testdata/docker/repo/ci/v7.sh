#!/bin/sh
# ci/v7.sh: the V7 build, a tiny "difftest" of arithmetic.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ci/common.sh"
proof v7
for case in "1+2=3" "6*7=42" "2*(3+4)=14"; do
	[ "$((${case%=*}))" = "${case#*=}" ] || { echo "v7: FAIL $case"; exit 1; }
done
echo "v7: difftest ok"
