package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for ourci-node: run through a link
// by that name (as the demo's tasks do, for spawn_task and blob_upload), it
// is the command.
func TestMain(m *testing.M) {
	if name := filepath.Base(os.Args[0]); name == "ourci-node" || name == agentName {
		os.Exit(runAs(name, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestDemo runs the README's first command: the seed's pipeline, ten tasks,
// on a local mesh, without Docker, and passes.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node mesh and runs ten tasks")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "ourci-node")); err != nil {
		t.Fatal(err)
	}
	// The demo puts its machines' commands on PATH too; restored after.
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := filepath.Join(t.TempDir(), "demo")
	var out strings.Builder
	if got := demo([]string{"--dir", dir, "--keep"}, &out); got != exitOK {
		t.Fatalf("demo: exit %d, want 0:\n%s", got, out.String())
	}
	for _, want := range []string{
		"closed, passed · 10 tasks (10 passed, 0 failed, 0 open)",
		"ourci/test/esp-12e  fw-esp8266-ota.tar.gz test-driver-esp8266-ota.sh",
		"OTA=1 ci/fw/esp8266.sh",
		"PASS: 3 of 3 expectations of test.js hold\n",
		"firmware: board=esp-12e ota=",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
