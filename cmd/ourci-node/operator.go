package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

const operatorUsage = `usage: ourci-node operator snapshot save FILE      save the ledger (a backup)
       ourci-node operator snapshot restore FILE   replace the ledger on every node with a saved one
       ourci-node operator raft list-peers         the Raft servers: voters, non-voters, dead ones, the quorum
       ourci-node operator raft remove-peer NAME   remove a dead node's Raft servers (the leader does so
                                                   by itself after --dead-server-after)
       ourci-node operator raft recover [--voter NAME]...   on a stopped node: after the loss of
                                                   the quorum, make the survivors the only voters
see docs/OPERATIONS.md`

// runOperator: backups and disaster recovery (docs/OPERATIONS.md).
func runOperator(args []string) int {
	switch {
	case len(args) >= 2 && args[0] == "snapshot" && args[1] == "save":
		return runSnapshotSave(args[2:])
	case len(args) >= 2 && args[0] == "snapshot" && args[1] == "restore":
		return runSnapshotRestore(args[2:])
	case len(args) >= 2 && args[0] == "raft" && args[1] == "list-peers":
		return runListPeers(args[2:])
	case len(args) >= 2 && args[0] == "raft" && args[1] == "remove-peer":
		return runRemovePeer(args[2:])
	case len(args) >= 2 && args[0] == "raft" && args[1] == "recover":
		return runRaftRecover(args[2:])
	}
	fmt.Fprintln(os.Stderr, operatorUsage)
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		return exitOK
	}
	return exitUsage
}

// cliError is an error as the CLI prints it (no package prefixes, what to
// do next), carrying the cause for exitFor's exit code.
type cliError struct {
	msg string
	err error
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

// apiMessage says what went wrong in a call to node for people.
func apiMessage(node string, err error) string {
	var se *api.StatusError
	switch {
	case errors.As(err, &se) && (se.HTTPStatus == http.StatusUnauthorized || se.HTTPStatus == http.StatusForbidden):
		return se.Msg + ": operator commands need the cluster token (--secret-file with the cluster secret, or --token-file holding the output of `ourci-node token`)"
	case errors.As(err, &se) && se.Code == api.CodeNoLeader:
		return se.Msg + ": the mesh has no leader; try again once it has one (ourci-node status)"
	case errors.As(err, &se):
		return se.Msg
	case errors.Is(err, api.ErrUnavailable):
		return fmt.Sprintf("cannot reach the node at %s: is it running? (give another one with --node)", node)
	}
	return err.Error()
}

// dataDirMessage is what the CLI says about a damaged data directory or
// one in use, for join and the offline operator commands.
func dataDirMessage(err error) (string, bool) {
	var de *raftfsm.DataError
	if !errors.As(err, &de) {
		return "", false
	}
	if errors.Is(err, raftfsm.ErrInUse) {
		return fmt.Sprintf("the data directory %s is in use by another process (an ourci-node running on it, most likely: its %s is locked). Stop that node first, or give this one a --data-dir of its own.", de.Dir, filepath.Base(de.File)), true
	}
	return fmt.Sprintf(`this node's data is damaged: %s: %s.
The node cannot start on it. The way out (docs/OPERATIONS.md, "A damaged data directory"):
  - if other members of the mesh are up: move the data directory away (keep it for a look later)
        mv %[3]s %[3]s.damaged
    and start the node again on an empty one with --peer MEMBER (copy cluster.secret back
    if the node kept the cluster secret there): it joins the mesh as a new member and gets
    the ledger from the others;
  - if no other member holds the ledger: start a new mesh on an empty data directory and
    restore a backup into it: ourci-node operator snapshot restore FILE`, de.File, de.Detail, de.Dir), true
}

// trimBackup drops the Go prefix of a raftfsm.ErrBackup error.
func trimBackup(err error) string {
	return strings.TrimPrefix(err.Error(), raftfsm.ErrBackup.Error()+": ")
}
