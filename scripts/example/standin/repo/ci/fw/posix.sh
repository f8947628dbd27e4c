. $(dirname $0)/ourci/scripts/functions.sh

# The seed's fw.sh spawns ci/fw/posix.sh but the doc does not print it: this
# stand-in links the POSIX firmware from fw/src (fw/platforms/posix).
make -C fw/platforms/posix
