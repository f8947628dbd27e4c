package github

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// smtpTimeout bounds one SMTP conversation when ctx has no earlier deadline.
const smtpTimeout = time.Minute

// Subject is the e-mail subject for n, e.g.
// "[ourci] owner/repo PR #12 failed: job abc".
func Subject(n Notification) string {
	where := n.Branch
	switch {
	case n.PR > 0:
		where = fmt.Sprintf("PR #%d", n.PR)
	case where == "":
		where = shortSHA(n.SHA)
	}
	return oneLine(fmt.Sprintf("[ourci] %s %s %s: job %s", n.Repo, where, n.Kind, n.Job))
}

// MailBody is the plain-text body of the e-mail for n.
func MailBody(n Notification) string {
	var b strings.Builder
	verb := "failed"
	if n.Kind == NotifyRecovered {
		verb = "passed again"
	}
	fmt.Fprintf(&b, "OurCI job %s on %s %s.\n\n", n.Job, n.Repo, verb)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-8s %s\n", k+":", oneLine(v))
		}
	}
	line("Job", n.URL)
	line("Status", n.Status)
	line("Reason", n.Reason)
	line("Commit", n.SHA)
	line("Branch", n.Branch)
	if n.PR > 0 {
		line("PR", fmt.Sprintf("#%d", n.PR))
	}
	b.WriteString("\nYou get this mail as the author of the commit.\n-- \nOurCI\n")
	return b.String()
}

// oneLine drops control characters (CR and LF above all) from a value that
// goes into a header or a line of the body.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// message composes the RFC 5322 message (CRLF line ends are added by the
// SMTP DATA writer).
func message(from, to *mail.Address, n Notification) []byte {
	id := make([]byte, 12)
	rand.Read(id)
	host := "ourci"
	if at := strings.LastIndexByte(from.Address, '@'); at >= 0 {
		host = from.Address[at+1:]
	}
	var b strings.Builder
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, v) }
	hdr("From", from.String())
	hdr("To", to.String())
	hdr("Subject", mime.QEncoding.Encode("utf-8", Subject(n)))
	hdr("Date", time.Now().Format(time.RFC1123Z))
	hdr("Message-ID", fmt.Sprintf("<%s@%s>", hex.EncodeToString(id), host))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	hdr("Auto-Submitted", "auto-generated")
	hdr("X-Ourci-Job", oneLine(n.Job))
	b.WriteString("\n")
	b.WriteString(MailBody(n))
	return []byte(b.String())
}

func (nt *Notifier) sendMail(ctx context.Context, n Notification) error {
	from, err := mail.ParseAddress(nt.SMTPFrom)
	if err != nil {
		return fmt.Errorf("github: notification e-mail: sender %q: %w", nt.SMTPFrom, err)
	}
	to, err := mail.ParseAddress(n.To.Email)
	if err != nil {
		return fmt.Errorf("github: notification e-mail: recipient %q: %w", n.To.Email, err)
	}
	to.Name = oneLine(n.To.Name)
	msg := message(from, to, n)
	err = nt.policy().retry(ctx, func() (time.Duration, bool, error) {
		err := nt.smtpSend(ctx, from.Address, to.Address, msg)
		var te *textproto.Error
		return 0, errors.As(err, &te) && te.Code >= 500, err // 5xx: the server refuses for good
	})
	if err != nil {
		return fmt.Errorf("github: notification e-mail to %s via %s: %w", to.Address, nt.SMTPAddr, err)
	}
	return nil
}

// smtpSend is net/smtp.SendMail with a context: the connection is dialled
// with ctx, given a deadline, and closed if ctx ends mid-conversation.
// Like SendMail it uses STARTTLS when offered and PLAIN auth when asked.
func (nt *Notifier) smtpSend(ctx context.Context, from, to string, msg []byte) error {
	host, _, err := net.SplitHostPort(nt.SMTPAddr)
	if err != nil {
		return fmt.Errorf("SMTP address: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", nt.SMTPAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(smtpTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return err
		}
	}
	if nt.SMTPUser != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("SMTP server does not support AUTH")
		}
		if err := c.Auth(smtp.PlainAuth("", nt.SMTPUser, nt.SMTPPassword, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
