#!/bin/sh
# ci/fw/posix.sh: the example's POSIX firmware build. "Links" a firmware image
# from a few generated object files and prints its size and checksum.
set -eu
echo "posix: building on ${OURCI_NODE_NAME:-?} (job ${OURCI_JOB:-?})"
for obj in main net fs; do
	printf 'object %s for posix\n' "$obj" >"$obj.o"
done
cat main.o net.o fs.o >fw-posix.elf
echo "posix: fw-posix.elf $(wc -c <fw-posix.elf) bytes, cksum $(cksum <fw-posix.elf)"
