# ci/common.sh: sourced by every build script of the e2e seed repository
# (e2e/docker_test.go copies this tree into a git repository standing in for
# GitHub) after it set ROOT to the checkout's top from its own path, as the
# seed's ". $(dirname $0)/ourci/scripts/functions.sh" does. Sources the OurCI
# verbs from the checkout and hands BASE_SDK and ESP_SDK down the task tree.
. "$ROOT/ourci/scripts/functions.sh"
OURCI_SPAWN_ENV="BASE_SDK ESP_SDK"

# proof NAME: prints, without git (the images have none), what the test
# checks: the commit and branch the node says it checked out, the content of
# ci/VERSION in the workspace, and where the script runs (docker-init as pid 1
# and busybox as /bin/sh inside a task container; the ESP SDK marker, present
# only in the ESP_SDK image; the container's memory limit).
proof() {
	echo "$1: BRANCH=${BRANCH:-} OURCI_SHA=${OURCI_SHA:-} CI_BRANCH=${CI_BRANCH:-}"
	echo "$1: VERSION=$(cat "$ROOT/ci/VERSION")"
	echo "$1: workspace=$PWD root=$ROOT"
	echo "$1: pid1=$(cat /proc/1/comm) sh=$(readlink /bin/sh || echo none) image=${OURCI_IMAGE:-none}"
	echo "$1: esp-sdk=$(cat /opt/esp-sdk/VERSION 2>/dev/null || echo none)"
	echo "$1: memory-limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max 2>/dev/null || echo unknown)"
}
