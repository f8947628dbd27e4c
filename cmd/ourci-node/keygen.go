package main

import (
	"fmt"
	"os"

	"github.com/ourci/ourci/node"
)

func runKeygen(args []string) int {
	fs := newFlagSet("keygen", "")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	fmt.Fprintln(os.Stdout, node.NewSecret().String())
	return exitOK
}
