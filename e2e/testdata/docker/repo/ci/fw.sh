#!/bin/sh
# ci/fw.sh: the firmware build (the seed's fw.sh): the POSIX build in
# ${BASE_SDK}, the esp8266 cross builds in ${ESP_SDK}.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ci/common.sh"
proof fw
id=$(spawn_task -t ourci/build/docker "$BASE_SDK" "ci/fw/posix.sh")
echo "fw: spawned posix as $id"
id=$(spawn_task -t ourci/build/docker "$ESP_SDK" "ci/fw/esp8266.sh")
echo "fw: spawned esp8266 as $id"
id=$(spawn_task -t ourci/build/docker "$ESP_SDK" "OTA=1 ci/fw/esp8266.sh")
echo "fw: spawned esp8266 OTA as $id"
