package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// scrubEnv removes the named variables from this process's environment
// once their values were read: from what child processes inherit
// (os.Unsetenv) and from /proc/PID/environ, which shows the environment
// block the process started with, whatever it unset since. That block is
// overwritten in place (through /proc/self/mem) with NUL bytes after
// "NAME=", so a task that can read the node's /proc entry finds no secret
// there. Go keeps its own copy of the environment, so nothing in this
// process reads the block any more.
func scrubEnv(names ...string) error {
	want := map[string]bool{}
	for _, name := range names {
		if _, ok := os.LookupEnv(name); ok {
			want[name] = true
			os.Unsetenv(name)
		}
	}
	if len(want) == 0 {
		return nil
	}
	start, end, err := envBlock()
	if err != nil {
		return err
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("scrub environment: %w", err)
	}
	defer mem.Close()
	block := make([]byte, end-start)
	if _, err := mem.ReadAt(block, int64(start)); err != nil {
		return fmt.Errorf("scrub environment: read: %w", err)
	}
	changed := false
	for off := 0; off < len(block); {
		n := bytes.IndexByte(block[off:], 0)
		if n < 0 {
			n = len(block) - off
		}
		entry := block[off : off+n]
		if k, _, ok := bytes.Cut(entry, []byte("=")); ok && want[string(k)] {
			clear(entry[len(k)+1:])
			changed = true
		}
		off += n + 1
	}
	if !changed {
		return nil
	}
	if _, err := mem.WriteAt(block, int64(start)); err != nil {
		return fmt.Errorf("scrub environment: write: %w", err)
	}
	return nil
}

// envBlock returns where the initial environment block of this process
// lies (env_start and env_end of /proc/self/stat, fields 50 and 51).
func envBlock() (start, end uint64, err error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("scrub environment: %w", err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // f[0] is field 3
	if len(f) < 49 {
		return 0, 0, errors.New("scrub environment: /proc/self/stat has no env_start and env_end")
	}
	start, err1 := strconv.ParseUint(f[47], 10, 64)
	end, err2 := strconv.ParseUint(f[48], 10, 64)
	if err1 != nil || err2 != nil || end < start || end-start > 64<<20 {
		return 0, 0, errors.New("scrub environment: bad env_start or env_end in /proc/self/stat")
	}
	return start, end, nil
}
