package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/ourci/ourci/node/api"
)

// runKeyring rotates the gossip encryption key on every member, the way
// that never splits the mesh: install the new key everywhere, then use it
// everywhere, then remove the old one everywhere.
func runKeyring(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: ourci-node keyring generate | list | install KEY | use KEY | remove KEY")
		return exitUsage
	}
	op := args[0]
	if op == "generate" {
		k := make([]byte, 32)
		rand.Read(k)
		fmt.Println(base64.StdEncoding.EncodeToString(k))
		return exitOK
	}
	fs := newFlagSet("keyring "+op, "[KEY]")
	var cf clientFlags
	cf.register(fs)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return exitUsage
	}
	key := ""
	switch {
	case op == "list" && len(pos) == 0:
		op = ""
	case (op == "install" || op == "use" || op == "remove") && len(pos) == 1:
		key = pos[0]
	default:
		fmt.Fprintln(os.Stderr, "usage: ourci-node keyring generate | list | install KEY | use KEY | remove KEY")
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		return exitFor(err)
	}
	ctx, stop := signalContext()
	defer stop()
	st, err := c.Status(ctx)
	if err != nil {
		return exitFor(err)
	}
	failed := 0
	for _, m := range st.Members {
		if !m.Alive || m.HTTP == "" {
			fmt.Printf("%-16s not reachable by gossip: change its keyring when it is back\n", m.Name)
			failed++
			continue
		}
		mc := api.NewClient("http://"+m.HTTP, c.Token)
		res, err := mc.Keyring(ctx, op, key)
		if err != nil {
			fmt.Printf("%-16s %v\n", m.Name, err)
			failed++
			continue
		}
		fmt.Printf("%-16s %s\n", m.Name, strings.Join(res.Keys, " "))
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "ourci-node keyring: %d of %d members not changed; run it again before the next step\n", failed, len(st.Members))
		return exitUnavailable
	}
	return exitOK
}
