package auth

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	blob := s.BlobToken("job456", "abc123", 2)
	metrics, err := s.OperatorToken(RoleMetrics, time.Time{})
	if err != nil {
		t.Fatalf("a metrics token: %v", err)
	}
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
		{"task with no id", s.TaskToken("", 1), Principal{}, false},
		{"blob capability", blob, Principal{Job: "job456", Task: "abc123", Attempt: 2, Blob: true}, true},
		{"blob capability of another mesh", other.BlobToken("job456", "abc123", 2), Principal{}, false},
		{"blob capability moved to another job", strings.Replace(blob, "job456", "job457", 1), Principal{}, false},
		{"blob capability with attempt changed", strings.Replace(blob, ".2.", ".3.", 1), Principal{}, false},
		{"blob capability's MAC as a task token", taskTokenPrefix + "abc123.2." + blob[strings.LastIndex(blob, ".")+1:], Principal{}, false},
		{"task token's MAC as a blob capability", blobTokenPrefix + "job456.abc123.2." + task[strings.LastIndex(task, ".")+1:], Principal{}, false},
		{"blob capability with no job", s.BlobToken("", "abc123", 1), Principal{}, false},
		{"metrics", metrics, Principal{Role: RoleMetrics}, true},
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

// TestPrincipalRights: what each kind of token may do by role. A blob
// capability and a metrics token may neither read nor operate, and a
// blob capability is not a task token (it cannot spawn).
func TestPrincipalRights(t *testing.T) {
	tests := []struct {
		name                  string
		p                     Principal
		read, operate, isTask bool
	}{
		{"cluster", Principal{Cluster: true}, true, true, false},
		{"operate", Principal{Role: RoleOperate}, true, true, false},
		{"read", Principal{Role: RoleRead}, true, false, false},
		{"metrics", Principal{Role: RoleMetrics}, false, false, false},
		{"task", Principal{Task: "t", Attempt: 1}, false, false, true},
		{"blob capability", Principal{Job: "j", Task: "t", Attempt: 1, Blob: true}, false, false, false},
	}
	for _, tt := range tests {
		if got := tt.p.May(RoleRead); got != tt.read {
			t.Errorf("%s: May(read) got %v, want %v", tt.name, got, tt.read)
		}
		if got := tt.p.May(RoleOperate); got != tt.operate {
			t.Errorf("%s: May(operate) got %v, want %v", tt.name, got, tt.operate)
		}
		if got := tt.p.IsTask(); got != tt.isTask {
			t.Errorf("%s: IsTask got %v, want %v", tt.name, got, tt.isTask)
		}
	}
}

// FuzzAuthenticate: no input panics, and whatever authenticates is exactly
// the token the secret makes for that principal (nothing else passes).
func FuzzAuthenticate(f *testing.F) {
	s, _ := ParseSecret(secretPrefix + strings.Repeat("5a", 32))
	op, _ := s.OperatorToken(RoleOperate, time.Time{})
	me, _ := s.OperatorToken(RoleMetrics, time.Unix(4102444800, 0))
	for _, tok := range []string{
		s.ClusterToken(), s.TaskToken("0123456789ab", 1), s.BlobToken("ba9876543210", "0123456789ab", 3), op, me,
		"ourci-t1.a.b.c", "ourci-b1....", "ourci-b1.j.t.-1.00", "ourci-o1.admin.0.00.00", "ourci-t1.x.+1.00", "", ".",
	} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := s.Authenticate(tok)
		if err != nil {
			if p != (Principal{}) {
				t.Fatalf("refused %q but got principal %+v", tok, p)
			}
			return
		}
		var want string
		switch {
		case p.Cluster:
			want = s.ClusterToken()
		case p.Blob:
			want = s.BlobToken(p.Job, p.Task, p.Attempt)
		case p.Task != "":
			want = s.TaskToken(p.Task, p.Attempt)
		case p.Role == RoleRead || p.Role == RoleOperate || p.Role == RoleMetrics:
			parts := strings.Split(strings.TrimPrefix(tok, operatorTokenPrefix), ".")
			want = operatorTokenPrefix + p.Role + "." + parts[1] + "." + parts[2] + "." + hex.EncodeToString(s.derive(labelOperator, p.Role, parts[1], parts[2]))
		default:
			t.Fatalf("%q authenticated as %+v, which may do nothing", tok, p)
		}
		if tok != want {
			t.Fatalf("%q authenticated as %+v, whose token is %q", tok, p, want)
		}
	})
}
