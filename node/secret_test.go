package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretFileRoundTrip(t *testing.T) {
	s := NewSecret()
	p := filepath.Join(t.TempDir(), "d", "cluster.secret")
	if err := WriteSecret(p, s); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecret(p, NewSecret()); err == nil {
		t.Error("second WriteSecret: got nil, want a refusal to overwrite")
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode: got %o, want 600", got)
	}
	got, err := LoadSecret(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != s.String() {
		t.Errorf("got %s, want %s", got, s)
	}
	for _, bad := range []string{"", "nope", secretPrefix + "zz", secretPrefix + "abcd"} {
		if _, err := ParseSecret(bad); !errors.Is(err, ErrSecret) {
			t.Errorf("ParseSecret(%q): got %v, want ErrSecret", bad, err)
		}
	}
}

func TestTokens(t *testing.T) {
	s, other := NewSecret(), NewSecret()
	task := s.TaskToken("abc123", 2)
	tests := []struct {
		name  string
		token string
		want  Principal
		ok    bool
	}{
		{"cluster", s.ClusterToken(), Principal{Cluster: true}, true},
		{"task", task, Principal{Task: "abc123", Attempt: 2}, true},
		{"cluster of another mesh", other.ClusterToken(), Principal{}, false},
		{"task of another mesh", other.TaskToken("abc123", 2), Principal{}, false},
		{"task with attempt changed", strings.Replace(task, ".2.", ".3.", 1), Principal{}, false},
		{"task with id changed", strings.Replace(task, "abc123", "abc124", 1), Principal{}, false},
		{"truncated", task[:len(task)-2], Principal{}, false},
		{"empty", "", Principal{}, false},
		{"garbage", "Bearer x", Principal{}, false},
		{"attempt zero", s.TaskToken("abc123", 0), Principal{}, false},
	}
	for _, tt := range tests {
		got, err := s.Authenticate(tt.token)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v, ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrToken) {
			t.Errorf("%s: got %v, want ErrToken", tt.name, err)
		}
	}
	if string(s.GossipKey()) == string(s.TLSSeed()) || len(s.GossipKey()) != 32 {
		t.Error("derived keys must differ and the gossip key be 32 bytes")
	}
	if strings.Contains(task, s.String()[len(secretPrefix):]) {
		t.Error("a task token must not contain the secret")
	}
}
