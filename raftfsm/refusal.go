package raftfsm

import "errors"

// Refusals on the wire. A follower's write is applied by the leader, and
// its refusal travels back as a code and a message; Refusal rebuilds an
// error that errors.Is matches against the same sentinel, so a caller
// handles a refusal alike wherever the command was applied. Codes are
// append-only, like command values.
var refusalCodes = []struct {
	code string
	err  error
}{
	{"not_found", ErrNotFound},
	{"job_closed", ErrJobClosed},
	{"stale_attempt", ErrStaleAttempt},
	{"conflict", ErrConflict},
	{"invalid", ErrInvalid},
	{"quota", ErrQuota},
	{"ignored", ErrIgnored},
}

// RefusalCode is err's code ("" when err is no refusal of the ledger).
func RefusalCode(err error) string {
	for _, r := range refusalCodes {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return ""
}

// Refusal is the refusal of code with message msg (the refusing replica's
// err.Error()). An unknown code (a newer binary's) is ErrInvalid: the
// command was refused, for a reason this binary cannot name.
func Refusal(code, msg string) error {
	for _, r := range refusalCodes {
		if r.code == code {
			return &refusal{err: r.err, msg: msg}
		}
	}
	return &refusal{err: ErrInvalid, msg: msg}
}

type refusal struct {
	err error
	msg string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.err }
