#!/bin/sh
# ci/cloud.sh: the cloud build: renders a config file for the job.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ci/common.sh"
proof cloud
printf 'service=cloud\njob=%s\nsha=%s\n' "$OURCI_JOB" "$OURCI_SHA" >cloud.conf
echo "cloud: cloud.conf sha256 $(sha256sum <cloud.conf | cut -d' ' -f1)"
