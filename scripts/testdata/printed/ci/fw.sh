. $(dirname $0)/ourci/scripts/functions.sh

spawn_task -t ourci/build/docker ${BASE_SDK} "ci/fw/posix.sh"
spawn_task -t ourci/build/docker ${ESP_SDK} "ci/fw/esp8266.sh"
spawn_task -t ourci/build/docker ${ESP_SDK} "OTA=1 ci/fw/esp8266.sh"
