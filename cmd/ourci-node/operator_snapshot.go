package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// snapshotSaved is `operator snapshot save --json`.
type snapshotSaved struct {
	SchemaVersion int       `json:"schema_version"`
	File          string    `json:"file"`
	Index         uint64    `json:"index"`  // the ledger index it was saved at
	Size          int64     `json:"size"`   // bytes of the file
	SHA256        string    `json:"sha256"` // of the whole file (sha256sum FILE)
	Saved         time.Time `json:"saved"`
	Jobs          int       `json:"jobs"`
	Tasks         int       `json:"tasks"`
	Blobs         int       `json:"blobs"`
}

// runSnapshotSave: operator snapshot save FILE. The file is written next
// to FILE, read back whole (size, hash, every record), flushed, and only
// then renamed to FILE.
func runSnapshotSave(args []string) int {
	cmd := newClientCommand("operator snapshot save", "FILE", "FILE [--json] [--node URL]")
	asJSON := cmd.fs.Bool("json", false, "print {schema_version, file, index, size, sha256, saved, jobs, tasks, blobs}")
	file, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	fail := func(msg string, err error) int {
		return exitFor(&cliError{msg: "operator snapshot save: " + msg, err: err})
	}
	rc, err := c.SaveSnapshot(ctx)
	if err != nil {
		return fail(apiMessage(c.Base, err), err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(file), ".ourci-snapshot-*")
	if err != nil {
		return fail(fmt.Sprintf("cannot write next to %s: %v", file, err), err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, sum), rc)
	if err != nil {
		return fail(fmt.Sprintf("the download broke off after %d bytes: %v; try again", size, err), err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fail(err.Error(), err)
	}
	h, _, err := raftfsm.ReadBackup(tmp)
	if err != nil {
		return fail(fmt.Sprintf("what the node sent does not verify (%s); nothing was saved; try again", trimBackup(err)), err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err.Error(), err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err.Error(), err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fail(err.Error(), err)
	}
	if d, err := os.Open(filepath.Dir(file)); err == nil {
		d.Sync()
		d.Close()
	}
	out := snapshotSaved{SchemaVersion: api.SchemaVersion, File: file, Index: h.Index, Size: size,
		SHA256: hex.EncodeToString(sum.Sum(nil)), Saved: h.Saved, Jobs: h.Jobs, Tasks: h.Tasks, Blobs: h.Blobs}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(out)
		return exitOK
	}
	fmt.Printf("saved the ledger at index %d (%d jobs, %d tasks, %d blobs) to %s: %d bytes, sha256 %s\n",
		out.Index, out.Jobs, out.Tasks, out.Blobs, file, out.Size, out.SHA256)
	return exitOK
}

// runSnapshotRestore: operator snapshot restore FILE. The file is checked
// here first, then by the leader, before anything changes.
func runSnapshotRestore(args []string) int {
	cmd := newClientCommand("operator snapshot restore", "FILE", "FILE [--json] [--node URL]")
	asJSON := cmd.fs.Bool("json", false, "print the node's answer {schema_version, index, snapshot_index, saved, sha256, jobs, tasks, blobs}")
	file, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	fail := func(msg string, err error) int {
		return exitFor(&cliError{msg: "operator snapshot restore: " + msg, err: err})
	}
	f, err := os.Open(file)
	if err != nil {
		return fail(err.Error(), err)
	}
	defer f.Close()
	if _, _, err := raftfsm.ReadBackup(f); err != nil {
		return fail(fmt.Sprintf("%s cannot be restored: %s. Nothing was changed.", file, trimBackup(err)), errors.New("bad file"))
	}
	ctx, stop := signalContext()
	defer stop()
	res, err := c.RestoreSnapshot(ctx, f)
	if api.IsCode(err, api.CodeBadRequest) {
		return fail(fmt.Sprintf("the leader refused %s: %s", file, apiMessage(c.Base, err)), errors.New("refused"))
	}
	if err != nil {
		return fail(apiMessage(c.Base, err), err)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
		return exitOK
	}
	fmt.Printf("restored the ledger saved at %s (index %d: %d jobs, %d tasks, %d blobs); every node holds it from index %d on.\n"+
		"What the mesh did after the save is undone: jobs spawned since are gone, and tasks that ran since may run again.\n",
		res.Saved.Format(time.RFC3339), res.SnapshotIndex, res.Jobs, res.Tasks, res.Blobs, res.Index)
	return exitOK
}
