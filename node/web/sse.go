package web

import (
	"net/http"
	"strings"
)

// eventStream writes Server-Sent Events, flushing after each.
type eventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startEvents answers r with an event stream.
func startEvents(w http.ResponseWriter) (*eventStream, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx and friends: do not buffer
	w.WriteHeader(http.StatusOK)
	s := &eventStream{w: w, rc: http.NewResponseController(w)}
	// A browser reconnects this long after a stream breaks.
	if _, err := w.Write([]byte("retry: 2000\n\n")); err != nil {
		return nil, err
	}
	return s, s.rc.Flush()
}

// send writes one event. data may hold any text: every line of it (CR, LF
// and CRLF all end a line, as the event-stream format has it) goes in a
// data field of its own, so no line of it can be read as another field.
func (s *eventStream) send(event, id, data string) error {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + oneLine(id) + "\n")
	}
	if event != "" {
		b.WriteString("event: " + oneLine(event) + "\n")
	}
	for _, line := range splitLines(data) {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	if _, err := s.w.Write([]byte(b.String())); err != nil {
		return err
	}
	return s.rc.Flush()
}

// heartbeat writes a comment, which browsers ignore.
func (s *eventStream) heartbeat() error {
	if _, err := s.w.Write([]byte(": heartbeat\n\n")); err != nil {
		return err
	}
	return s.rc.Flush()
}

func splitLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.Split(s, "\n")
}

func oneLine(s string) string {
	return strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(s)
}
