. $(dirname $0)/ourci/scripts/functions.sh

# The seed's all.sh spawns ci/cloud.sh but the doc does not print it: this
# stand-in renders the stand-in cloud service's configuration (cloud/).
make -C cloud
