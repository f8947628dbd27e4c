package github_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ourci/ourci/node/github"
)

func TestLoadTokenFromFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	os.WriteFile(path, []byte("  "+token+"\n\n"), 0o600)
	t.Setenv(github.TokenEnv, "not-this-one")
	got, err := github.LoadToken(path)
	if err != nil || got != token {
		t.Fatalf("LoadToken = %q, %v", got, err)
	}
}

func TestLoadTokenFromEnv(t *testing.T) {
	t.Setenv(github.TokenEnv, " "+token+"\n")
	got, err := github.LoadToken("")
	if err != nil || got != token {
		t.Fatalf("LoadToken = %q, %v", got, err)
	}
	t.Setenv(github.TokenEnv, "")
	if _, err := github.LoadToken(""); !errors.Is(err, github.ErrToken) || !strings.Contains(err.Error(), github.TokenEnv) {
		t.Fatalf("empty env: %v", err)
	}
	t.Setenv(github.TokenEnv, token+" "+token)
	if _, err := github.LoadToken(""); err == nil || strings.Contains(err.Error(), token) {
		t.Fatalf("two tokens in env: %v", err)
	}
}

func TestLoadTokenBadFileHidesToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	for name, path := range map[string]string{
		"two lines":     write("two", token+"\nsecond-"+token+"\n"),
		"inner space":   write("space", token+" x"),
		"control chars": write("ctl", token+"\x00"),
		"empty":         write("empty", " \n"),
		"too large":     write("large", token+strings.Repeat("A", 70<<10)),
		"missing":       filepath.Join(dir, "nope"),
		"directory":     dir,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := github.LoadToken(path)
			if !errors.Is(err, github.ErrToken) || got != "" {
				t.Fatalf("LoadToken = %q, %v; want ErrToken", got, err)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "ghp_") {
				t.Fatalf("error shows the token: %v", err)
			}
			t.Log(err)
		})
	}
	if os.Geteuid() != 0 {
		p := write("unreadable", token)
		os.Chmod(p, 0)
		if _, err := github.LoadToken(p); err == nil || strings.Contains(err.Error(), token) {
			t.Fatalf("unreadable: %v", err)
		}
	}
}
