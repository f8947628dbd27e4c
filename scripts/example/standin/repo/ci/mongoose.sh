. $(dirname $0)/ourci/scripts/functions.sh

# The seed's all.sh spawns ci/mongoose.sh but the doc does not print it:
# this stand-in builds and tests the stand-in Mongoose of mongoose/.
make -C mongoose test
