package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// scrubHelperEnv makes the test binary a process that scrubs its
// environment and waits (TestScrubEnv).
const scrubHelperEnv = "OURCI_TEST_SCRUB_HELPER"

func init() {
	if os.Getenv(scrubHelperEnv) != "1" {
		return
	}
	err := scrubEnv("OURCI_GITHUB_TOKEN", "MY_SECRET", "NOT_SET")
	fmt.Printf("scrubbed err=%v token=%q secret=%q\n", err, os.Getenv("OURCI_GITHUB_TOKEN"), os.Getenv("MY_SECRET"))
	bufio.NewReader(os.Stdin).ReadString('\n') // until the test has looked
	os.Exit(0)
}

// TestScrubEnv: a secret the node read from its environment is gone from
// its /proc/PID/environ (which shows the block it started with), as from
// its own os.Getenv; other variables stay.
func TestScrubEnv(t *testing.T) {
	const token, secret = "ghp_scrubme0123456789", "hunter2-secret-value"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{scrubHelperEnv + "=1", "OURCI_GITHUB_TOKEN=" + token, "KEEP=kept", "MY_SECRET=" + secret}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	select {
	case got := <-line:
		if want := "scrubbed err=<nil> token=\"\" secret=\"\"\n"; got != want {
			t.Errorf("the helper says %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waited 10s for the helper to scrub its environment")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	environ := string(b)
	for _, s := range []string{token, secret} {
		if strings.Contains(environ, s) {
			t.Errorf("/proc/PID/environ still holds %q: %q", s, environ)
		}
	}
	for _, s := range []string{"KEEP=kept\x00", "OURCI_GITHUB_TOKEN=\x00", "MY_SECRET=\x00"} {
		if !strings.Contains(environ, s) {
			t.Errorf("/proc/PID/environ lacks %q: %q", s, environ)
		}
	}
}
