#!/bin/sh
# ci/fw.sh: the example's firmware build (the seed's fw.sh). Spawns the POSIX
# build in ${BASE_SDK:--} and two esp8266 builds in ${ESP_SDK:--}, the second
# one as the seed's single shell-form argument "OTA=1 .../fw/esp8266.sh".
set -eu
CI=$(cd "$(dirname "$0")" && pwd)
. "${OURCI_FUNCTIONS:-$CI/../../functions.sh}"
OURCI_SPAWN_ENV=${OURCI_SPAWN_ENV-BASE_SDK ESP_SDK BUILD_TOPIC TEST_TOPIC}
topic=${BUILD_TOPIC:-ourci/build/docker}

echo "fw: on ${OURCI_NODE_NAME:-?} (job ${OURCI_JOB:-?})"
id=$(spawn_task -t "$topic" "${BASE_SDK:--}" "$CI/fw/posix.sh")
echo "fw: spawned posix as $id"
id=$(spawn_task -t "$topic" "${ESP_SDK:--}" "$CI/fw/esp8266.sh")
echo "fw: spawned esp8266 as $id"
id=$(spawn_task -t "$topic" "${ESP_SDK:--}" "OTA=1 $CI/fw/esp8266.sh")
echo "fw: spawned esp8266 OTA as $id"
