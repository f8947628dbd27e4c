package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/ourci/ourci/scripts"
)

func runFunctions(args []string) int { return functionsCmd(args, os.Stdout) }

// functionsCmd prints functions.sh, the verbs of build scripts, as this
// binary carries it, or writes it to each -o FILE, making its directory:
// the way to vendor it where the seed's scripts source it.
func functionsCmd(args []string, stdout io.Writer) int {
	fs := newFlagSet("functions", "[-o FILE]...")
	var outs listFlag
	fs.Var(&outs, "o", "write it to FILE (making its directory) instead of stdout (repeatable; the seed's layout: -o ci/ourci/scripts/functions.sh -o ci/fw/ourci/scripts/functions.sh)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(os.Stderr, "ourci-node functions: unexpected argument %q: give each file to write as -o FILE\n", pos[0])
		return exitUsage
	}
	if len(outs) == 0 {
		if _, err := stdout.Write(scripts.Functions()); err != nil {
			fmt.Fprintln(os.Stderr, "ourci-node functions:", err)
			return exitError
		}
		return exitOK
	}
	for _, f := range outs {
		if err := scripts.Vendor(f); err != nil {
			fmt.Fprintf(os.Stderr, "ourci-node functions: %s: give a FILE where you may write\n", pathError(err))
			return exitError
		}
	}
	return exitOK
}

// pathError is the message of err's *fs.PathError (without the prefixes
// of the packages it went through), or err's own.
func pathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Error()
	}
	return err.Error()
}
