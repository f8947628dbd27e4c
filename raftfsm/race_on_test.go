//go:build race

package raftfsm

// raceBuild: the race detector slows Apply down about tenfold; scale tests
// run smaller under it.
const raceBuild = true
