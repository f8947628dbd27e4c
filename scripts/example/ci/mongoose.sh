#!/bin/sh
# ci/mongoose.sh: the example's Mongoose build. Writes a small source file in
# the workspace and "compiles" it by counting its lines and words.
set -eu
echo "mongoose: building on ${OURCI_NODE_NAME:-?} (job ${OURCI_JOB:-?})"
cat >mongoose.c <<'SRC'
#include "mongoose.h"
int main(void) {
  struct mg_mgr mgr;
  mg_mgr_init(&mgr, NULL);
  return 0;
}
SRC
set -- $(wc -l -w <mongoose.c)
echo "mongoose: compiled mongoose.c ($1 lines, $2 words)"
[ "$1" -gt 0 ]
