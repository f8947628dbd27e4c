#!/bin/sh
# agents/esp8266_agent.sh: the hardware-test agent of the example (the seed's
# agent B, ourci_esp8266_agent.sh), run by a node started with
#     --topic ourci/test/esp-12e=/path/to/esp8266_agent.sh
# as
#     esp8266_agent.sh FW_BLOB SCRIPT_BLOB
# It fetches the test script SCRIPT_BLOB from the job's blobs with a plain curl
# of ${BLOB_URL} (no git checkout, no credentials), and runs it with FW_BLOB;
# exits with the script's status. Needs only sh and curl (the script itself,
# the example's test driver, needs gzip and tar too).
set -eu
echo "esp8266_agent: args: $*"
if [ "$#" -ne 2 ]; then
	echo "esp8266_agent: FAIL: want 2 args, FW_BLOB SCRIPT_BLOB"
	exit 2
fi
: "${BLOB_URL:?is not set: run me as an OurCI agent}"
echo "esp8266_agent: on ${OURCI_NODE_NAME:-?} (job ${OURCI_JOB:-?}): fetching test script $2"
curl -fsS "${BLOB_URL}/${2}" >test_script.sh
chmod +x test_script.sh
echo "esp8266_agent: running test script $2 $1"
rc=0
./test_script.sh "${1}" || rc=$?
echo "esp8266_agent: test script exited $rc"
exit "$rc"
