package raftfsm

import "time"

// Time stamps. A command's At is the leader's clock when it proposed the
// entry: the dispatcher calls Stamp once per command, just before it
// encodes the entry, and no other code sets it. Apply reads At and never a
// clock, so every replica applies the same time.
//
// A payload type with an At field says so by the at method below; the
// registry finds it (entry), and a test fails for a registered payload that
// has the field and not the method.

// timed is a payload that carries the leader's time.
type timed interface{ at() *time.Time }

func (p *Spawn) at() *time.Time        { return &p.At }
func (p *Approve) at() *time.Time      { return &p.At }
func (p *Assign) at() *time.Time       { return &p.At }
func (p *TaskStarted) at() *time.Time  { return &p.At }
func (p *TaskFinished) at() *time.Time { return &p.At }
func (p *CloseJob) at() *time.Time     { return &p.At }
func (p *Requeue) at() *time.Time      { return &p.At }
func (p *BlobAdded) at() *time.Time    { return &p.At }
func (p *Expire) at() *time.Time       { return &p.At }
func (p *Quarantine) at() *time.Time   { return &p.At }
func (p *Release) at() *time.Time      { return &p.At }
func (p *LeaseExpire) at() *time.Time  { return &p.At }
func (p *LogSealed) at() *time.Time    { return &p.At }

// Stamp sets the time of c, and of each part of a batch, to now (UTC). It
// writes through c's payload pointers: the proposer owns them.
func Stamp(c *Command, now time.Time) {
	now = now.UTC()
	if c.Type == CmdBatch {
		for i := range c.Batch {
			Stamp(&c.Batch[i], now)
		}
		return
	}
	if sp := specOf(c.Type); sp != nil && sp.at != nil {
		if t := sp.at(c); t != nil {
			*t = now
		}
	}
}
