package github

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	gogithub "github.com/google/go-github/v60/github"
)

// ErrPermanent marks a GitHub API refusal that retrying cannot fix: a 4xx
// other than a rate limit (bad token, unknown repository or commit,
// validation failure).
var ErrPermanent = errors.New("github: permanent API error")

const (
	defaultRetries = 5
	defaultBackoff = 500 * time.Millisecond
	maxBackoff     = 30 * time.Second
	// maxRateWait bounds one wait for a rate limit; GitHub's primary limit
	// resets within the hour.
	maxRateWait = time.Hour
	// maxRateWaits bounds how many rate-limit waits one call makes (they do
	// not use up Retries); ctx bounds their total length.
	maxRateWaits = 10
	// rateMargin is added to a rate-limit reset, for clock skew.
	rateMargin = 250 * time.Millisecond
)

// retryPolicy is the shared retry configuration of Statuses and Notifier.
type retryPolicy struct {
	retries int
	backoff time.Duration
	sleep   func(ctx context.Context, d time.Duration) error
}

func newPolicy(retries int, backoff time.Duration, sleep func(context.Context, time.Duration) error) retryPolicy {
	switch {
	case retries == 0:
		retries = defaultRetries
	case retries < 0:
		retries = 0 // try once
	}
	if backoff <= 0 {
		backoff = defaultBackoff
	}
	if sleep == nil {
		sleep = SleepContext
	}
	return retryPolicy{retries: retries, backoff: backoff, sleep: sleep}
}

// delay is the wait before retry number n (0-based): backoff doubled n
// times, capped at 30s, with jitter in [d/2, d].
func (p retryPolicy) delay(n int) time.Duration {
	d := p.backoff
	for i := 0; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// SleepContext waits for d or until ctx is done, whichever is first, and
// returns ctx's error in the latter case. It is the default Sleep.
func SleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// verdict is what to do after a failed API call.
type verdict int

const (
	transient verdict = iota // retry after backoff
	rateLimit                // wait for the given time, then retry
	permanent                // give up
)

// classify sorts an error from go-github. For a rate limit it also returns
// how long to wait (0: unknown, use backoff).
func classify(err error, resp *gogithub.Response) (verdict, time.Duration) {
	var rl *gogithub.RateLimitError
	if errors.As(err, &rl) {
		return rateLimit, untilReset(rl.Rate.Reset.Time)
	}
	var abuse *gogithub.AbuseRateLimitError
	if errors.As(err, &abuse) {
		if abuse.RetryAfter != nil {
			return rateLimit, max(*abuse.RetryAfter, 0) + rateMargin
		}
		return rateLimit, 0
	}
	var hr *http.Response
	var er *gogithub.ErrorResponse
	switch {
	case errors.As(err, &er) && er.Response != nil:
		hr = er.Response
	case resp != nil && resp.Response != nil:
		hr = resp.Response
	default:
		return transient, 0 // no answer: network error
	}
	code := hr.StatusCode
	if code == http.StatusForbidden || code == http.StatusTooManyRequests {
		if ra := hr.Header.Get("Retry-After"); ra != "" {
			if s, err := strconv.Atoi(ra); err == nil && s >= 0 {
				return rateLimit, time.Duration(s)*time.Second + rateMargin
			}
			return rateLimit, 0
		}
		if hr.Header.Get("X-RateLimit-Remaining") == "0" {
			reset, _ := strconv.ParseInt(hr.Header.Get("X-RateLimit-Reset"), 10, 64)
			if reset > 0 {
				return rateLimit, untilReset(time.Unix(reset, 0))
			}
			return rateLimit, 0
		}
		if code == http.StatusTooManyRequests {
			return rateLimit, 0
		}
	}
	switch {
	case code >= 500, code == http.StatusRequestTimeout:
		return transient, 0
	case code >= 400:
		return permanent, 0
	}
	return transient, 0
}

func untilReset(reset time.Time) time.Duration {
	if reset.IsZero() {
		return 0
	}
	return max(time.Until(reset), 0) + rateMargin
}

// do runs call until it succeeds, fails permanently (the error then wraps
// ErrPermanent), runs out of retries or ctx is done. A rate limit is waited
// out without using up a retry.
func (p retryPolicy) do(ctx context.Context, call func() (*gogithub.Response, error)) error {
	tries, rateWaits := 0, 0
	for {
		resp, err := call()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if errors.Is(err, ctx.Err()) {
				return err
			}
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		v, wait := classify(err, resp)
		switch v {
		case permanent:
			return fmt.Errorf("%w: %w", ErrPermanent, err)
		case rateLimit:
			rateWaits++
			if rateWaits > maxRateWaits {
				return err
			}
			if wait <= 0 {
				wait = p.delay(rateWaits - 1)
			}
			wait = min(wait, maxRateWait)
		default:
			if tries >= p.retries {
				return err
			}
			wait = p.delay(tries)
			tries++
		}
		if serr := p.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (last error: %w)", serr, err)
		}
	}
}
