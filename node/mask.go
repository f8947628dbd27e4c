package node

import (
	"bytes"
	"encoding/base64"
	"io"
	"slices"
	"sync"
)

// maskText replaces a secret in task output.
const maskText = "***"

// masker is an io.Writer that replaces every occurrence of its secrets, and
// of their base64 forms, before the bytes reach the log. A secret may be
// split across writes: the last len(longest)-1 bytes are held back until
// the next write or Close shows whether they start one.
type masker struct {
	w       io.Writer
	secrets [][]byte // longest first
	max     int

	mu      sync.Mutex
	pending []byte
}

// newMasker masks values (empty ones are ignored) and their standard and
// URL-safe base64 encodings, padded and not.
func newMasker(w io.Writer, values []string) *masker {
	m := &masker{w: w}
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			m.secrets = append(m.secrets, []byte(s))
		}
	}
	for _, v := range values {
		if v == "" {
			continue
		}
		add(v)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			add(enc.EncodeToString([]byte(v)))
		}
	}
	slices.SortFunc(m.secrets, func(a, b []byte) int { return len(b) - len(a) })
	for _, s := range m.secrets {
		m.max = max(m.max, len(s))
	}
	return m
}

func (m *masker) Write(p []byte) (int, error) {
	if len(m.secrets) == 0 {
		return m.w.Write(p)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	raw := append(m.pending, p...)
	cut := len(raw) - (m.max - 1)
	if cut <= 0 {
		m.pending = raw
		return len(p), nil
	}
	// Never cut through an occurrence: move the cut to its start.
	for moved := true; moved; {
		moved = false
		for _, s := range m.secrets {
			from := max(0, cut-len(s)+1)
			if i := bytes.Index(raw[from:], s); i >= 0 && from+i < cut && from+i+len(s) > cut {
				cut, moved = from+i, true
			}
		}
	}
	out := m.mask(raw[:cut])
	m.pending = append([]byte(nil), raw[cut:]...)
	if _, err := m.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes what is held back.
func (m *masker) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pending) == 0 {
		return nil
	}
	_, err := m.w.Write(m.mask(m.pending))
	m.pending = nil
	return err
}

func (m *masker) mask(b []byte) []byte {
	for _, s := range m.secrets {
		b = bytes.ReplaceAll(b, s, []byte(maskText))
	}
	return b
}
