#!/bin/sh
# ci/fw/esp8266.sh: the esp8266 cross build (the seed's esp8266.sh). Must run
# in the ESP_SDK image. Packs the firmware, uploads it and the test driver as
# blobs named within the job, fw-VARIANT.tar.gz and test-driver-VARIANT.sh,
# and spawns the hardware test on ourci/test/esp-12e with those names.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/ci/common.sh"
proof esp8266
if [ ! -f /opt/esp-sdk/VERSION ]; then
	echo "esp8266: FAIL: not in the ESP SDK image (no /opt/esp-sdk/VERSION; OURCI_IMAGE=${OURCI_IMAGE:-})"
	exit 1
fi
echo "esp8266: using ESP SDK $(cat /opt/esp-sdk/VERSION)"
OTA=${OTA:-0}
if [ "$OTA" = 1 ]; then variant=esp8266-ota; else variant=esp8266; fi
rm -rf firmware
mkdir firmware
# ci/fw/esp8266_test_driver.sh checks this line against the blob's name.
printf 'firmware %s OTA=%s\n' "$variant" "$OTA" >firmware/fw.bin
printf 'variant=%s\nsha=%s\nbranch=%s\n' "$variant" "$OURCI_SHA" "${BRANCH:-}" >firmware/manifest
tar czf fw.tar.gz firmware
echo "esp8266: built $variant, fw.tar.gz $(wc -c <fw.tar.gz) bytes"
ref=$(blob_upload fw.tar.gz "fw-$variant.tar.gz")
echo "esp8266: uploaded fw.tar.gz as fw-$variant.tar.gz ($ref)"
ref=$(blob_upload "$ROOT/ci/fw/esp8266_test_driver.sh" "test-driver-$variant.sh")
echo "esp8266: uploaded the test driver as test-driver-$variant.sh ($ref)"
id=$(spawn_task -t ourci/test/esp-12e - "fw-$variant.tar.gz" "test-driver-$variant.sh")
echo "esp8266: spawned the hardware test of $variant as $id"
