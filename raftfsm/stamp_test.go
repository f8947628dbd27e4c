package raftfsm

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestStampReachesEveryTimedPayload: every registered payload with an At
// field is stamped (a new command whose payload lacks the at method fails
// here), inside a batch too, and a payload without one is left alone.
func TestStampReachesEveryTimedPayload(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.FixedZone("x", 3600))
	for _, sp := range commandTable {
		if sp.typ == CmdBatch {
			continue
		}
		var c Command
		if err := sp.decode(&c, []byte(`{}`)); err != nil {
			t.Fatalf("%s: decode {}: %v", sp.name, err)
		}
		c.Type = sp.typ
		b := Command{Type: CmdBatch, Batch: []Command{c}}
		Stamp(&b, now)
		v := reflect.ValueOf(sp.payload(&c)).Elem()
		f := v.FieldByName("At")
		switch {
		case !f.IsValid():
			if sp.at != nil {
				t.Errorf("%s: has an at method and no At field", sp.name)
			}
		case f.Type() != reflect.TypeOf(time.Time{}):
			t.Errorf("%s: At is %s, want time.Time", sp.name, f.Type())
		default:
			got := f.Interface().(time.Time)
			if !got.Equal(now) || got.Location() != time.UTC {
				t.Errorf("%s: got At %v, want %v in UTC (does its payload have the at method?)", sp.name, got, now.UTC())
			}
		}
	}
}

// TestRefusalRoundTrip: every refusal code names its sentinel back, with
// the refusing replica's message; an unknown code is still a refusal.
func TestRefusalRoundTrip(t *testing.T) {
	for _, r := range refusalCodes {
		err := fmt.Errorf("%w: task t1", r.err)
		code := RefusalCode(err)
		back := Refusal(code, err.Error())
		if code != r.code || !errors.Is(back, r.err) || back.Error() != err.Error() {
			t.Errorf("%v: got code %q, back %v (is: %t), want %q and the same error", r.err, code, back, errors.Is(back, r.err), r.code)
		}
	}
	if got := RefusalCode(errors.New("disk full")); got != "" {
		t.Errorf("a plain error: got code %q, want none", got)
	}
	if back := Refusal("from_a_newer_binary", "no"); !errors.Is(back, ErrInvalid) {
		t.Errorf("an unknown code: got %v, want an ErrInvalid refusal", back)
	}
}
