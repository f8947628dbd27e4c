package tasklog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// at is the time of write i of evenly: 10 ms apart from t0.
func at(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Millisecond) }

func TestSections(t *testing.T) {
	gl := func(kind, name, rest string) string { return "section_" + kind + ":1700000000:" + name + rest }
	for _, tc := range []struct {
		name  string
		lines []string // one write each, 10 ms apart
		want  []Section
		trunc bool
	}{
		{name: "no markers", lines: []string{"a\n", "b\n"}},
		{name: "empty log"},
		{
			name:  "one group",
			lines: []string{"x\n", "::group::Build it\n", "cc -o a a.c\n", "::endgroup::\n", "y\n"},
			want:  []Section{{Name: "Build it", Title: "Build it", Style: StyleGitHub, First: 2, Last: 4, Start: at(1), End: at(3)}},
		},
		{
			name:  "a group closes the open one at the line before",
			lines: []string{"::group::one\n", "1\n", "::group::two\n", "2\n", "::endgroup::\n"},
			want: []Section{
				{Name: "one", Title: "one", Style: StyleGitHub, First: 1, Last: 2, Start: at(0), End: at(2)},
				{Name: "two", Title: "two", Style: StyleGitHub, First: 3, Last: 5, Start: at(2), End: at(4)},
			},
		},
		{
			name:  "a group left open ends at the last line",
			lines: []string{"::group::tests\n", "ok\n", "still going"},
			want:  []Section{{Name: "tests", Title: "tests", Style: StyleGitHub, First: 1, Last: 3, Start: at(0), End: at(2), Open: true}},
		},
		{
			name:  "an endgroup without a group is ignored",
			lines: []string{"::endgroup::\n", "::group::g\n", "::endgroup::\n", "::endgroup::\n"},
			want:  []Section{{Name: "g", Title: "g", Style: StyleGitHub, First: 2, Last: 3, Start: at(1), End: at(2)}},
		},
		{
			name: "gitlab nested, with title and options",
			lines: []string{
				"\x1b[0K" + gl("start", "build", "[collapsed=true]\r\x1b[0K\x1b[36;1mBuilding\x1b[0;m\n"),
				gl("start", "deps", "\r\x1b[0KFetching deps\n"),
				"go mod download\n",
				gl("end", "deps", "\r\x1b[0K\n"),
				"go build\n",
				"\x1b[0K" + gl("end", "build", "\r\x1b[0K\n"),
			},
			want: []Section{
				{Name: "build", Title: "Building", Style: StyleGitLab, First: 1, Last: 6, Start: at(0), End: at(5), Collapsed: true},
				{Name: "deps", Title: "Fetching deps", Style: StyleGitLab, First: 2, Last: 4, Start: at(1), End: at(3), Depth: 1},
			},
		},
		{
			name:  "an end closes the sections opened inside it",
			lines: []string{gl("start", "a", "\n"), gl("start", "b", "\n"), gl("end", "a", "\n"), gl("end", "b", "\n")},
			want: []Section{
				{Name: "a", Style: StyleGitLab, First: 1, Last: 3, Start: at(0), End: at(2)},
				{Name: "b", Style: StyleGitLab, First: 2, Last: 3, Start: at(1), End: at(2), Depth: 1},
			},
		},
		{
			name:  "same name nested: the innermost closes first",
			lines: []string{gl("start", "s", "\n"), gl("start", "s", "\n"), gl("end", "s", "\n"), gl("end", "s", "\n")},
			want: []Section{
				{Name: "s", Style: StyleGitLab, First: 1, Last: 4, Start: at(0), End: at(3)},
				{Name: "s", Style: StyleGitLab, First: 2, Last: 3, Start: at(1), End: at(2), Depth: 1},
			},
		},
		{
			name:  "an end of no open section is ignored",
			lines: []string{gl("end", "nope", "\n"), gl("start", "a", "\n"), gl("end", "nope", "\r\x1b[0K\n")},
			want:  []Section{{Name: "a", Style: StyleGitLab, First: 2, Last: 3, Start: at(1), End: at(2), Open: true}},
		},
		{
			name:  "an end and a start on one line",
			lines: []string{gl("start", "one", "\r\x1b[0KOne\n"), "1\n", "\x1b[0K" + gl("end", "one", "\r\x1b[0K\x1b[0K") + gl("start", "two", "\r\x1b[0KTwo\n"), gl("end", "two", "\n")},
			want: []Section{
				{Name: "one", Title: "One", Style: StyleGitLab, First: 1, Last: 3, Start: at(0), End: at(2)},
				{Name: "two", Title: "Two", Style: StyleGitLab, First: 3, Last: 4, Start: at(2), End: at(3)},
			},
		},
		{
			name:  "a group inside a gitlab section, closed with it",
			lines: []string{gl("start", "job", "\n"), "::group::step\n", "x\n", gl("end", "job", "\n"), "::endgroup::\n"},
			want: []Section{
				{Name: "job", Style: StyleGitLab, First: 1, Last: 4, Start: at(0), End: at(3)},
				{Name: "step", Title: "step", Style: StyleGitHub, First: 2, Last: 4, Start: at(1), End: at(3), Depth: 1},
			},
		},
		{
			name:  "a new group closes a gitlab section opened inside the old one",
			lines: []string{"::group::a\n", gl("start", "in", "\n"), "::group::b\n"},
			want: []Section{
				{Name: "a", Title: "a", Style: StyleGitHub, First: 1, Last: 2, Start: at(0), End: at(2)},
				{Name: "in", Style: StyleGitLab, First: 2, Last: 2, Start: at(1), End: at(2), Depth: 1},
				{Name: "b", Title: "b", Style: StyleGitHub, First: 3, Last: 3, Start: at(2), End: at(2), Open: true},
			},
		},
		{
			name:  "not markers",
			lines: []string{" ::group::indented\n", "echo ::group::x\n", "section_start::name\n", "section_start:12:\n", "section_start:1a:x\n", "section_end:1\n", "::group\n"},
		},
		{
			name:  "names cleaned and cut",
			lines: []string{"::group::\x1b[1m" + strings.Repeat("é", 150) + "\x07\n", "section_start:1:" + strings.Repeat("n", 300) + "\n", "section_end:1:" + strings.Repeat("n", 300) + "\n", "::endgroup::\n"},
			want: []Section{
				{Name: strings.Repeat("é", 100), Title: strings.Repeat("é", 100), Style: StyleGitHub, First: 1, Last: 4, Start: at(0), End: at(3)},
				{Name: strings.Repeat("n", 200), Style: StyleGitLab, First: 2, Last: 3, Start: at(1), End: at(2), Depth: 1},
			},
		},
		{
			name:  "the marker's own time is not used",
			lines: []string{"section_start:99999999999:x\n", "section_end:0:x\n"},
			want:  []Section{{Name: "x", Style: StyleGitLab, First: 1, Last: 2, Start: at(0), End: at(1)}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, trunc := ParseSections(writeAll(evenly(tc.lines...)))
			if d := diffSections(got, tc.want); d != "" || trunc != tc.trunc {
				t.Errorf("%s (truncated %v, want %v)\ngot:\n%s", d, trunc, tc.trunc, dumpSections(got))
			}
		})
	}
}

func TestSectionsBounded(t *testing.T) {
	var b strings.Builder
	for i := range MaxSections + 5 {
		fmt.Fprintf(&b, "::group::g%d\n", i)
	}
	b.WriteString("::endgroup::\n")
	got, trunc := ParseSections(writeAll([]arrival{{t0, []byte(b.String())}}))
	if len(got) != MaxSections || !trunc {
		t.Fatalf("%d sections, truncated %v; want %d, true", len(got), trunc, MaxSections)
	}
	if last := got[len(got)-1]; last.Name != fmt.Sprintf("g%d", MaxSections-1) || last.Last != MaxSections || last.Open {
		t.Errorf("the last section kept: %+v; want it closed by the first group past the bound", last)
	}
	// A marker past SectionLineBytes is not looked for.
	long := strings.Repeat("\x1b[0K", SectionLineBytes/4) + "::group::late\n"
	if got, _ := ParseSections(writeAll(evenly(long))); len(got) != 0 {
		t.Errorf("a marker past the first %d bytes: %+v", SectionLineBytes, got)
	}
}

// A sealed log's sections, read a frame at a time, are those of its lines
// in memory, whatever the frames' size.
func TestSealedSections(t *testing.T) {
	in := evenly("intro\n", "::group::compile\n", strings.Repeat("x", 5000)+"\n", "section_start:1:inner\r\x1b[0KInner\n", "y\n", "section_end:1:inner\r\x1b[0K\n", "::endgroup::\n", "::group::open", "ed at the end")
	want, _ := ParseSections(writeAll(in))
	if len(want) != 3 {
		t.Fatalf("in memory: %d sections, want 3:\n%s", len(want), dumpSections(want))
	}
	for _, target := range []int{2*binaryMaxVarints + 1, 64, FrameTarget} {
		var blob bytes.Buffer
		if _, err := sealFrames(&blob, writeAll(in), target); err != nil {
			t.Fatal(err)
		}
		got, trunc, err := open(t, blob.Bytes()).Sections()
		if d := diffSections(got, want); err != nil || trunc || d != "" {
			t.Errorf("frames of %d: %v, truncated %v, %s", target, err, trunc, d)
		}
	}
}

// FuzzSections: any output, timed by seed, parses into sections that make
// sense (lines in range and in order, depths as nesting allows), sealed
// or not, and never panics. Seeds beyond these are in testdata/fuzz.
func FuzzSections(f *testing.F) {
	f.Add([]byte("::group::a\nx\n::endgroup::\n"), uint64(1))
	f.Add([]byte("\x1b[0Ksection_start:1:a[collapsed=true]\r\x1b[0KA\nsection_start:2:b\nsection_end:3:a\r\x1b[0K\n"), uint64(2))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		r := rand.New(rand.NewPCG(seed, seed>>1))
		var in []arrival
		at := t0
		for p := data; len(p) > 0; {
			k := 1 + r.IntN(len(p))
			at = at.Add(time.Duration(r.Int64N(int64(3*time.Second))) - time.Second)
			in, p = append(in, arrival{at, p[:k]}), p[k:]
		}
		w := writeAll(in)
		got, _ := ParseSections(w)
		n := int64(w.NumLines())
		var prev Section
		for i, s := range got {
			switch {
			case s.First < 1 || s.First > s.Last || s.Last > n:
				t.Fatalf("section %d: lines %d-%d of %d", i, s.First, s.Last, n)
			case i > 0 && s.First < prev.First:
				t.Fatalf("section %d starts at line %d, before section %d's %d", i, s.First, i-1, prev.First)
			case s.Depth < 0 || s.Depth > i || i == 0 && s.Depth != 0:
				t.Fatalf("section %d at depth %d", i, s.Depth)
			case s.Depth > 0 && !inside(got[:i], s):
				t.Fatalf("section %d (depth %d, lines %d-%d) is in no section a level up:\n%s", i, s.Depth, s.First, s.Last, dumpSections(got))
			case len(s.Name) > MaxSectionName || len(s.Title) > MaxSectionName:
				t.Fatalf("section %d: name of %d bytes, title of %d", i, len(s.Name), len(s.Title))
			case s.Style != StyleGitHub && s.Style != StyleGitLab:
				t.Fatalf("section %d: style %q", i, s.Style)
			case s.Start.IsZero() || s.End.IsZero() || s.Duration() < 0:
				t.Fatalf("section %d: from %v to %v", i, s.Start, s.End)
			}
			prev = s
		}
		var blob bytes.Buffer
		if _, err := sealFrames(&blob, w, 2*binaryMaxVarints+1+int(seed%200)); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSealed(bytes.NewReader(blob.Bytes()), int64(blob.Len()))
		if err != nil {
			t.Fatal(err)
		}
		sealed, _, err := s.Sections()
		if d := diffSections(sealed, got); err != nil || d != "" {
			t.Fatalf("sealed: %v %s", err, d)
		}
	})
}

// inside reports whether one of before, a level above s, holds s's lines.
func inside(before []Section, s Section) bool {
	for _, o := range before {
		if o.Depth == s.Depth-1 && o.First <= s.First && s.Last <= o.Last {
			return true
		}
	}
	return false
}

func diffSections(got, want []Section) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d sections, want %d:\n%s", len(got), len(want), dumpSections(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Title != w.Title || g.Style != w.Style || g.First != w.First || g.Last != w.Last ||
			!g.Start.Equal(w.Start) || !g.End.Equal(w.End) || g.Depth != w.Depth || g.Open != w.Open || g.Collapsed != w.Collapsed {
			return fmt.Sprintf("section %d:\n got %s\nwant %s", i, dumpSection(g), dumpSection(w))
		}
	}
	return ""
}

func dumpSection(s Section) string {
	return fmt.Sprintf("{%q %q %s lines %d-%d %s..%s depth %d open %v collapsed %v}", s.Name, s.Title, s.Style, s.First, s.Last,
		s.Start.Format("15:04:05.000"), s.End.Format("15:04:05.000"), s.Depth, s.Open, s.Collapsed)
}

func dumpSections(ss []Section) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(dumpSection(s) + "\n")
	}
	return b.String()
}
