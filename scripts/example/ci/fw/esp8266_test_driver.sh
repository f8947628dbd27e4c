#!/bin/sh
# ci/fw/esp8266_test_driver.sh: the example's hardware test driver (the seed's
# esp8266_test_driver.sh). ci/fw/esp8266.sh uploads it as a blob and the test
# agent fetches and runs it as
#     esp8266_test_driver.sh FW_BLOB
# where FW_BLOB is the job's blob name fw-VARIANT.tar.gz. It downloads the
# firmware from ${BLOB_URL}, unpacks it, "flashes" it and checks that
# firmware/fw.bin holds what the build writes for VARIANT. Prints its verdict,
#     esp8266_test_driver: PASS VARIANT ...  or  esp8266_test_driver: FAIL ...
# and exits 0 on PASS, 1 on FAIL. Needs only sh, curl, gzip and tar.
set -eu
fail() {
	echo "esp8266_test_driver: FAIL ${variant:-?}: $*"
	exit 1
}
fw=${1:-}
case $fw in
fw-?*.tar.gz)
	variant=${fw#fw-}
	variant=${variant%.tar.gz}
	;;
*) fail "cannot tell the variant from the blob name '$fw' (want fw-VARIANT.tar.gz)" ;;
esac
case $variant in
esp8266) ota=0 ;;
esp8266-ota) ota=1 ;;
*) fail "unknown variant '$variant'" ;;
esac
want="firmware $variant OTA=$ota"

[ -n "${BLOB_URL:-}" ] || fail "BLOB_URL is not set"
echo "esp8266_test_driver: fetching $fw"
curl -fsS "${BLOB_URL}/${fw}" >fw.tar.gz || fail "could not fetch $fw"
rm -rf firmware fw.tar
gzip -dc fw.tar.gz >fw.tar || fail "$fw is not a gzip file"
tar xf fw.tar || fail "$fw is not a tarball"
[ -f firmware/fw.bin ] || fail "$fw holds no firmware/fw.bin"
echo "esp8266_test_driver: flashing firmware/fw.bin ($(wc -c <firmware/fw.bin | tr -d ' ') bytes) onto esp-12e"
got=$(cat firmware/fw.bin)
echo "esp8266_test_driver: the board runs: $got"
[ "$got" = "$want" ] || fail "the firmware says '$got', want '$want'"
echo "esp8266_test_driver: PASS $variant: firmware verified ($want)"
