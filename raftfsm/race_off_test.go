//go:build !race

package raftfsm

const raceBuild = false
