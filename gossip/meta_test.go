package gossip

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	in := Meta{Raft: "127.0.0.1:7947", HTTP: "127.0.0.1:7380", Slots: 4, Topics: []string{"b", "a"}, Draining: true}
	b, err := EncodeMeta(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Version, want.Topics = MetaVersion, []string{"a", "b"}
	if got.Raft != want.Raft || got.HTTP != want.HTTP || got.Slots != want.Slots || !slices.Equal(got.Topics, want.Topics) || got.Draining != want.Draining || got.Version != want.Version {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if !got.Subscribes("a") || got.Subscribes("c") {
		t.Errorf("Subscribes: got a=%v c=%v, want true false", got.Subscribes("a"), got.Subscribes("c"))
	}
}

func TestMetaRefusals(t *testing.T) {
	long := make([]string, 40)
	for i := range long {
		long[i] = "ourci/build/some-long-topic-name-" + strings.Repeat("x", 5)
	}
	if _, err := EncodeMeta(Meta{Topics: long}); !errors.Is(err, ErrMeta) {
		t.Errorf("oversized meta: got %v, want ErrMeta", err)
	}
	for _, in := range []string{"", "{", `{"v":0}`, `{"v":1,"s":-1}`, `[]`, `{"v":1,"t":"x"}`} {
		if _, err := DecodeMeta([]byte(in)); !errors.Is(err, ErrMeta) {
			t.Errorf("DecodeMeta(%q): got %v, want ErrMeta", in, err)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	ok, _ := EncodeMeta(Meta{Raft: "127.0.0.1:1", HTTP: "127.0.0.1:2", Slots: 2, Topics: []string{"t"}})
	f.Add(ok)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":2,"t":["z","a"],"s":3}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		if m.Slots < 0 || !slices.IsSorted(m.Topics) {
			t.Fatalf("decoded invalid meta %+v", m)
		}
		if enc, err := EncodeMeta(m); err == nil {
			m2, err := DecodeMeta(enc)
			if err != nil || !slices.Equal(m2.Topics, m.Topics) || m2.Slots != m.Slots {
				t.Fatalf("round trip: got %+v, %v; want %+v", m2, err, m)
			}
		}
	})
}
