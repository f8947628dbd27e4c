#!/bin/sh
# ci/fw/esp8266.sh: the example's esp8266 firmware build (the seed's esp8266.sh).
# Builds a firmware file whose content depends on OTA, prints its checksum, then
# spawns the hardware test on ${TEST_TOPIC:-ourci/test/esp-12e} with the args
# VARIANT CHECKSUM, where VARIANT is esp8266 or esp8266-ota.
set -eu
CI=$(cd "$(dirname "$0")/.." && pwd)
. "${OURCI_FUNCTIONS:-$CI/../../functions.sh}"
OURCI_SPAWN_ENV=${OURCI_SPAWN_ENV-BASE_SDK ESP_SDK BUILD_TOPIC TEST_TOPIC}

OTA=${OTA:-0}
if [ "$OTA" = 1 ]; then
	variant=esp8266-ota
else
	variant=esp8266
fi
echo "esp8266: building $variant (OTA=$OTA) on ${OURCI_NODE_NAME:-?}"
printf 'firmware %s OTA=%s\n' "$variant" "$OTA" >"fw-$variant.bin"
sum=$(cksum <"fw-$variant.bin" | cut -d' ' -f1)
echo "esp8266: fw-$variant.bin cksum $sum"
id=$(spawn_task -t "${TEST_TOPIC:-ourci/test/esp-12e}" - "$variant" "$sum")
echo "esp8266: spawned test of $variant as $id"
