package executor

import (
	"context"
	"errors"
	"testing"
)

func TestRegistry(t *testing.T) {
	fake := NewFake()
	tests := []struct {
		kind    Kind
		opts    Options
		image   bool
		wantErr error
	}{
		{KindHost, Options{Node: "n1"}, false, nil},
		{KindAgent, Options{Node: "n1"}, false, nil},
		{KindDocker, Options{Node: "n1"}, true, nil},
		{KindFake, Options{Node: "n1", Fake: fake}, false, nil},
		{"podman", Options{Node: "n1"}, false, ErrUnknownKind},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			b, err := Default.New(tt.kind, tt.opts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New(%s): got err %v, want %v", tt.kind, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			f, _ := Default.Lookup(tt.kind)
			if got := f.Describe; got.Kind != tt.kind || got.Image != tt.image {
				t.Errorf("Describe: got %+v, want kind %s image %v", got, tt.kind, tt.image)
			}
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := b.Close(); err != nil { // safe twice
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

// An executor added to a registry is one entry: the node makes its
// backends through it alone.
func TestRegistryAddsAnExecutor(t *testing.T) {
	fake := NewFake()
	fake.AutoExit(3)
	r := Registry{"mine": {Describe: Description{Kind: "mine"}, New: func(o Options) (Backend, error) { return Only(o.Fake), nil }}}
	b, err := r.New("mine", Options{Fake: fake})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Start(context.Background(), Spec{Args: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); code != 3 || err != nil {
		t.Fatalf("Wait: got %d, %v; want 3, nil", code, err)
	}
	if _, err := r.New(KindHost, Options{}); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("a kind this registry lacks: got %v, want ErrUnknownKind", err)
	}
}
