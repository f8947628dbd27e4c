package github

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notification kinds.
const (
	NotifyFailed    = "failed"    // the job's status turned failed
	NotifyRecovered = "recovered" // a job passed after a failed one on the same branch or PR
)

// HeaderNotifySignature carries "sha256=<hex>", the HMAC-SHA256 of an
// outgoing notification's body under Notifier.WebhookSecret.
const HeaderNotifySignature = "X-Ourci-Signature-256"

// Notification is what a Notifier sends: the JSON body of the outgoing
// webhook, and the facts of the e-mail.
type Notification struct {
	SchemaVersion int    `json:"schema_version"` // 1 (0 is sent as 1)
	Kind          string `json:"kind"`           // "failed" | "recovered"
	Job           string `json:"job"`
	Status        string `json:"status"`           // the job's status, e.g. "failed", "passed"
	Reason        string `json:"reason,omitempty"` // e.g. which task failed and how
	URL           string `json:"url,omitempty"`    // the job's page
	Repo          string `json:"repo"`             // owner/name
	SHA           string `json:"sha"`
	Branch        string `json:"branch,omitempty"`
	PR            int    `json:"pr,omitempty"`
	To            Author `json:"to"` // the head commit's author
}

// Notifier tells a commit's author that a job failed (or recovered),
// through an outgoing JSON webhook and/or e-mail. A zero channel is off.
// Safe for concurrent use; set the fields before the first Send.
type Notifier struct {
	WebhookURL    string // POST application/json Notification; "" = none
	WebhookSecret []byte // optional: sign the body (HeaderNotifySignature)

	SMTPAddr               string // host:port; "" = no e-mail
	SMTPFrom               string // envelope and header sender, required with SMTPAddr
	SMTPUser, SMTPPassword string // optional PLAIN auth (only over TLS or to localhost, as net/smtp requires)

	HTTP    *http.Client  // default: a 30s timeout
	Retries int           // retries after the first try per channel, default 5 (negative: none)
	Backoff time.Duration // first backoff, default 500ms, doubling, jittered, capped at 30s
	Sleep   func(ctx context.Context, d time.Duration) error
}

// Send delivers n to every configured channel at once, retrying each with
// backoff, and returns the joined errors of the channels that failed after
// their retries (nil if all went through). One channel failing never stops
// the other. E-mail goes to n.To.Email; it is skipped when that is empty or
// a GitHub no-reply address, which receives no mail. Send blocks through
// its retries (about 15s at the defaults, at most ctx): call it off any
// path that a job waits on.
func (nt *Notifier) Send(ctx context.Context, n Notification) error {
	if n.SchemaVersion == 0 {
		n.SchemaVersion = 1
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(f func(context.Context, Notification) error) {
		wg.Go(func() {
			if err := f(ctx, n); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	if nt.WebhookURL != "" {
		run(nt.sendWebhook)
	}
	if nt.SMTPAddr != "" && mailable(n.To.Email) {
		run(nt.sendMail)
	}
	wg.Wait()
	return errors.Join(errs...)
}

func mailable(email string) bool {
	e := strings.ToLower(strings.TrimSpace(email))
	return e != "" && !strings.HasSuffix(e, "@users.noreply.github.com") && e != "noreply@github.com"
}

func (nt *Notifier) policy() retryPolicy { return newPolicy(nt.Retries, nt.Backoff, nt.Sleep) }

// retry runs try until it succeeds, reports a permanent failure, runs out
// of retries or ctx is done. try returns how long to wait at least before
// the next attempt (a Retry-After), or 0.
func (p retryPolicy) retry(ctx context.Context, try func() (after time.Duration, permanent bool, err error)) error {
	for n := 0; ; n++ {
		after, perm, err := try()
		if err == nil {
			return nil
		}
		if perm || n >= p.retries {
			return err
		}
		if ctx.Err() != nil {
			if errors.Is(err, ctx.Err()) {
				return err
			}
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		if serr := p.sleep(ctx, max(p.delay(n), min(after, maxBackoff))); serr != nil {
			return fmt.Errorf("%w (last error: %w)", serr, err)
		}
	}
}

func (nt *Notifier) sendWebhook(ctx context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("github: notification webhook: %w", err)
	}
	hc := nt.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	err = nt.policy().retry(ctx, func() (time.Duration, bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, nt.WebhookURL, bytes.NewReader(body))
		if err != nil {
			return 0, true, errors.New("bad webhook URL")
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "ourci")
		req.Header.Set("X-Ourci-Event", n.Kind)
		if len(nt.WebhookSecret) > 0 {
			mac := hmac.New(sha256.New, nt.WebhookSecret)
			mac.Write(body)
			req.Header.Set(HeaderNotifySignature, sigPrefix+hex.EncodeToString(mac.Sum(nil)))
		}
		resp, err := hc.Do(req)
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err // its URL may hold a secret in the path or query
		}
		if err != nil {
			return 0, false, err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		code := resp.StatusCode
		if code/100 == 2 {
			return 0, false, nil
		}
		err = fmt.Errorf("answered %s", resp.Status)
		if code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests {
			s, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			return time.Duration(max(s, 0)) * time.Second, false, err
		}
		return 0, true, err
	})
	if err != nil {
		return fmt.Errorf("github: notification webhook %s: %w", redactURL(nt.WebhookURL), err)
	}
	return nil
}
