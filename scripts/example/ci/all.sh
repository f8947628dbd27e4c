#!/bin/sh
# ci/all.sh: the root task of the example pipeline (the seed's all.sh).
# Spawns the four component builds on ${BUILD_TOPIC:-ourci/build/docker} in
# image ${BASE_SDK:--} ("-" means no image) and returns.
set -eu
CI=$(cd "$(dirname "$0")" && pwd)
. "${OURCI_FUNCTIONS:-$CI/../../functions.sh}"
OURCI_SPAWN_ENV=${OURCI_SPAWN_ENV-BASE_SDK ESP_SDK BUILD_TOPIC TEST_TOPIC}

echo "all: job ${OURCI_JOB:-?} task ${OURCI_TASK:-?} on ${OURCI_NODE_NAME:-?}"
for component in v7 mongoose cloud fw; do
	id=$(spawn_task -t "${BUILD_TOPIC:-ourci/build/docker}" "${BASE_SDK:--}" "$CI/$component.sh")
	echo "all: spawned $component as $id"
done
