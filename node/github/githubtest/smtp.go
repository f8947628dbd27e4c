package githubtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
)

// Message is one e-mail the SMTPServer received.
type Message struct {
	From string   // envelope sender (MAIL FROM)
	To   []string // envelope recipients (RCPT TO)
	Data []byte   // the message as sent after DATA (headers and body, LF line ends)
	User string   // the AUTH PLAIN user, if the client authenticated
}

// SMTPServer is a tiny SMTP server on 127.0.0.1 speaking enough of the
// protocol for net/smtp (EHLO/HELO, AUTH PLAIN, MAIL FROM, RCPT TO, DATA,
// RSET, NOOP, QUIT; no STARTTLS). It records every message it accepts.
type SMTPServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	msgs    []Message
	waited  int // messages already returned by WaitMessage
	failN   int
	conns   map[net.Conn]struct{}
	closed  bool
	changed chan struct{}
}

// NewSMTP starts an SMTPServer on 127.0.0.1:0. Close it when done.
func NewSMTP() *SMTPServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("githubtest: listen: %v", err))
	}
	s := &SMTPServer{ln: ln, conns: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	s.wg.Go(s.accept)
	return s
}

// Addr is the server's host:port, for Notifier.SMTPAddr.
func (s *SMTPServer) Addr() string { return s.ln.Addr().String() }

// Messages returns every message received, in order.
func (s *SMTPServer) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitMessage returns the first message not yet returned by WaitMessage,
// waiting for it until ctx is done.
func (s *SMTPServer) WaitMessage(ctx context.Context) (Message, error) {
	for {
		s.mu.Lock()
		if s.waited < len(s.msgs) {
			m := s.msgs[s.waited]
			s.waited++
			s.mu.Unlock()
			return m, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("githubtest: no e-mail arrived: %w", ctx.Err())
		}
	}
}

// FailNext makes the server refuse the next n messages with a temporary
// error (451 to MAIL FROM), which senders retry.
func (s *SMTPServer) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN += n
}

// Close stops the server and drops open connections.
func (s *SMTPServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *SMTPServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.serve(textproto.NewConn(c))
		})
	}
}

func (s *SMTPServer) serve(tp *textproto.Conn) {
	reply := func(format string, args ...any) bool { return tp.PrintfLine(format, args...) == nil }
	if !reply("220 localhost ESMTP githubtest") {
		return
	}
	var m *Message
	user := ""
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		ok := true
		switch strings.ToUpper(verb) {
		case "EHLO":
			ok = reply("250-localhost greets %s", arg) && reply("250-8BITMIME") && reply("250-AUTH PLAIN") && reply("250 SIZE 26214400")
		case "HELO":
			ok = reply("250 localhost")
		case "AUTH":
			mech, initial, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") {
				ok = reply("504 5.5.4 Unrecognized authentication type")
				break
			}
			if initial == "" {
				if !reply("334 ") {
					return
				}
				if initial, err = tp.ReadLine(); err != nil {
					return
				}
			}
			raw, err := base64.StdEncoding.DecodeString(initial)
			parts := bytes.Split(raw, []byte{0})
			if err != nil || len(parts) != 3 {
				ok = reply("501 5.5.2 Cannot decode response")
				break
			}
			user = string(parts[1])
			ok = reply("235 2.7.0 Authentication successful")
		case "MAIL":
			addr, good := path(arg, "FROM:")
			s.mu.Lock()
			fail := s.failN > 0
			if fail {
				s.failN--
			}
			s.mu.Unlock()
			switch {
			case !good:
				ok = reply("501 5.1.7 Bad sender address syntax")
			case fail:
				ok = reply("451 4.3.0 Temporary failure, try again later")
			default:
				m = &Message{From: addr, User: user}
				ok = reply("250 2.1.0 Ok")
			}
		case "RCPT":
			addr, good := path(arg, "TO:")
			switch {
			case m == nil:
				ok = reply("503 5.5.1 Error: need MAIL command")
			case !good:
				ok = reply("501 5.1.3 Bad recipient address syntax")
			default:
				m.To = append(m.To, addr)
				ok = reply("250 2.1.5 Ok")
			}
		case "DATA":
			if m == nil || len(m.To) == 0 {
				ok = reply("503 5.5.1 Error: need RCPT command")
				break
			}
			if !reply("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			m.Data = data
			s.mu.Lock()
			s.msgs = append(s.msgs, *m)
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
			m = nil
			ok = reply("250 2.0.0 Ok: queued")
		case "RSET":
			m = nil
			ok = reply("250 2.0.0 Ok")
		case "NOOP":
			ok = reply("250 2.0.0 Ok")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			ok = reply("502 5.5.2 Error: command not recognized")
		}
		if !ok {
			return
		}
	}
}

// path parses "FROM:<addr> [params]" or "TO:<addr> [params]".
func path(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", false
	}
	return rest[1:end], true
}
