#!/bin/sh
# ci/all.sh: the root task (the seed's all.sh): spawns the four component
# builds in ${BASE_SDK}, with paths relative to the checkout.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ci/common.sh"
proof all
id=$(spawn_task -t ourci/build/docker "$BASE_SDK" "ci/v7.sh")
echo "all: spawned v7 as $id"
id=$(spawn_task -t ourci/build/docker "$BASE_SDK" "ci/mongoose.sh")
echo "all: spawned mongoose as $id"
id=$(spawn_task -t ourci/build/docker "$BASE_SDK" "ci/cloud.sh")
echo "all: spawned cloud as $id"
id=$(spawn_task -t ourci/build/docker "$BASE_SDK" "ci/fw.sh")
echo "all: spawned fw as $id"
