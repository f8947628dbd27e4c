#!/bin/sh
# agents/esp8266_agent.sh: the hardware-test agent of the example, run by a node
# started with --topic ourci/test/esp-12e=/path/to/esp8266_agent.sh as
#     esp8266_agent.sh VARIANT CHECKSUM
# It "flashes" the firmware VARIANT onto the board and "tests" it: the check is
# that VARIANT is an esp8266 firmware and CHECKSUM a number; exits with its status.
set -eu
echo "esp8266_agent: args: $*"
variant=${1:-}
sum=${2:-}
echo "esp8266_agent: flashing $variant onto esp-12e on ${OURCI_NODE_NAME:-?} (job ${OURCI_JOB:-?})"
echo "esp8266_agent: testing $variant (firmware cksum $sum)"
case $variant in
esp8266 | esp8266-ota) ;;
*)
	echo "esp8266_agent: FAIL: unknown variant '$variant'"
	exit 1
	;;
esac
case $sum in
'' | *[!0-9]*)
	echo "esp8266_agent: FAIL: bad checksum '$sum'"
	exit 1
	;;
esac
echo "esp8266_agent: PASS $variant"
