#!/bin/sh
# ci/cloud.sh: the example's cloud build. Renders a config file for the job
# and prints its checksum.
set -eu
echo "cloud: building on ${OURCI_NODE_NAME:-?} (job ${OURCI_JOB:-?})"
printf 'service=cloud\njob=%s\nbranch=%s\n' "${OURCI_JOB:-none}" "${BRANCH:-none}" >cloud.conf
echo "cloud: cloud.conf $(cksum <cloud.conf)"
