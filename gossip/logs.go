package gossip

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/ourci/ourci/node/lograte"
)

// logWriter routes memberlist's log lines to slog, dropping debug chatter.
// A warning or error that names its source (" from=ADDR": a packet that
// does not decrypt or decode, a stream that fails) is what anyone who can
// reach the gossip port can cause at will: each is counted (BadPackets)
// and written at most once per source per interval, with the number
// suppressed since.
type logWriter struct {
	log   *slog.Logger
	limit lograte.Limiter
	bad   atomic.Uint64
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	if bytes.Contains(line, []byte("[DEBUG]")) {
		return len(p), nil
	}
	level := slog.LevelWarn
	if bytes.Contains(line, []byte("[ERR]")) {
		level = slog.LevelError
	}
	src, ok := lineSource(line)
	if !ok {
		w.log.Log(context.Background(), level, "memberlist", "msg", string(line))
		return len(p), nil
	}
	w.bad.Add(1)
	allow, suppressed, key := w.limit.Allow(src)
	if !allow {
		return len(p), nil
	}
	args := []any{"msg", string(line), "source", key}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	w.log.Log(context.Background(), level, "memberlist: bad gossip from outside the mesh, or a failing member", args...)
	return len(p), nil
}

// lineSource is the host of a memberlist line's " from=HOST:PORT" (the
// port is dropped: a flood from one host uses many).
func lineSource(line []byte) (string, bool) {
	_, after, ok := bytes.Cut(line, []byte(" from="))
	if !ok {
		return "", false
	}
	if i := bytes.IndexAny(after, " \t"); i >= 0 {
		after = after[:i]
	}
	addr := string(after)
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h, true
	}
	return addr, addr != ""
}

var _ io.Writer = (*logWriter)(nil)

// BadPackets is how many gossip packets and streams memberlist refused or
// could not use and logged with their source (undecryptable, malformed,
// failed): what ourci_gossip_bad_packets_total counts.
func (g *Gossip) BadPackets() uint64 { return g.logs.bad.Load() }
