#!/bin/sh
# ci/fw/esp8266.sh: the example's esp8266 firmware build (the seed's esp8266.sh).
# Builds a firmware directory whose content depends on OTA and packs it as
# fw.tar.gz, then hands it off as the seed does: uploads the tarball and the
# test driver (ci/fw/esp8266_test_driver.sh) as blobs named within the job,
#     fw-VARIANT.tar.gz  test-driver-VARIANT.sh
# where VARIANT is esp8266 or esp8266-ota, and spawns the hardware test on
# ${TEST_TOPIC:-ourci/test/esp-12e} with those two names as its args. The test
# agent fetches both with curl from ${BLOB_URL}, so it needs no git access.
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
rm -rf firmware
mkdir firmware
# The test driver derives this line from the blob's name: keep them in step.
printf 'firmware %s OTA=%s\n' "$variant" "$OTA" >firmware/fw.bin
printf 'variant=%s\nota=%s\njob=%s\n' "$variant" "$OTA" "${OURCI_JOB:-none}" >firmware/manifest
tar czf fw.tar.gz -C . firmware
echo "esp8266: firmware/fw.bin cksum $(cksum <firmware/fw.bin | cut -d' ' -f1), fw.tar.gz $(wc -c <fw.tar.gz | tr -d ' ') bytes"

fw_blob=fw-$variant.tar.gz
driver_blob=test-driver-$variant.sh
ref=$(blob_upload fw.tar.gz "$fw_blob")
echo "esp8266: uploaded fw.tar.gz as $fw_blob ($ref)"
ref=$(blob_upload "$CI/fw/esp8266_test_driver.sh" "$driver_blob")
echo "esp8266: uploaded the test driver as $driver_blob ($ref)"
id=$(spawn_task -t "${TEST_TOPIC:-ourci/test/esp-12e}" - "$fw_blob" "$driver_blob")
echo "esp8266: spawned test of $variant as $id"
