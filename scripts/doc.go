// Package scripts carries the shell side of OurCI: functions.sh for build
// scripts, and the seed's example pipeline (example/): the design doc's
// scripts as it prints them (example/seed, with the mends it needs marked in
// place) and a stand-in for the repository and the machines they run on
// (example/standin), embedded so that the ourci-node binary can write them
// out for its demo. example/README.md tells them apart.
//
// Concurrency: the package holds embedded files and pure helpers; nothing
// is shared.
package scripts
