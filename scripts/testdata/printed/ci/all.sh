. $(dirname $0)/ourci/scripts/functions.sh

spawn_task -t ourci/build/docker ${BASE_SDK} "ci/v7.sh"
spawn_task -t ourci/build/docker ${BASE_SDK} "ci/mongoose.sh"
spawn_task -t ourci/build/docker ${BASE_SDK} "ci/cloud.sh"
spawn_task -t ourci/build/docker ${BASE_SDK} "ci/fw.sh"
