package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
)

// runBlob: ourci-node blob put FILE [--name NAME] | blob get REF [-o FILE].
func runBlob(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: ourci-node blob put FILE [--name NAME] | blob get REF [-o FILE]")
		return exitUsage
	}
	switch args[0] {
	case "put":
		return runBlobPut(args[1:])
	case "get":
		return runBlobGet(args[1:])
	}
	fmt.Fprintf(os.Stderr, "ourci-node blob: unknown verb %q (put, get)\n", args[0])
	return exitUsage
}

func runBlobPut(args []string) int {
	cmd := newClientCommand("blob put", "FILE", "FILE [--name NAME] [--job JOB] [--json]")
	name := cmd.fs.String("name", "", "name the blob within the job (inside a task: the task's job)")
	job := cmd.fs.String("job", "", "job to add the blob to (outside a task)")
	asJSON := cmd.fs.Bool("json", false, "print {schema_version, ref, size, job, name, index}; blob get --index INDEX on another node finds it at once")
	file, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	f, err := os.Open(file)
	if err != nil {
		return exitFor(err)
	}
	defer f.Close()
	q := url.Values{}
	if *name != "" {
		q.Set("name", *name)
	}
	if *job != "" {
		q.Set("job", *job)
	}
	ctx, stop := signalContext()
	defer stop()
	info, err := c.PutBlob(ctx, f, q)
	if err != nil {
		return exitFor(err)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(info)
	} else {
		fmt.Println(info.Ref)
	}
	return exitOK
}

func runBlobGet(args []string) int {
	cmd := newClientCommand("blob get", "REF (sha256:<hex> or a name in the job)", "REF [-o FILE] [--job JOB] [--index INDEX]")
	out := cmd.fs.String("o", "", "write to FILE (default: stdout)")
	job := cmd.fs.String("job", "", "job whose names REF refers to (outside a task)")
	index := cmd.fs.Uint64("index", 0, "the index blob put --json printed: the node first waits until its ledger holds the blob's record")
	ref, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	rc, err := c.GetBlobAt(ctx, ref, *job, *index)
	if err != nil {
		return exitFor(err)
	}
	defer rc.Close()
	return exitFor(writeOut(ctx, *out, rc))
}

// writeOut copies r to path atomically (temp file, rename), or to stdout.
func writeOut(ctx context.Context, path string, r io.Reader) error {
	if path == "" || path == "-" {
		_, err := io.Copy(os.Stdout, r)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ourci-blob-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("download broke: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
