package raftfsm

import (
	"fmt"
	"time"
)

// Rigs and devices: a node's health per topic (a run of infrastructure
// failures, a quarantine) and the devices its attempts hold.

// rig returns the record of node serving topic, made on first use.
func (s *State) rig(node, topic string) *Rig {
	k := RigKey(node, topic)
	r := s.Rigs[k]
	if r == nil {
		r = &Rig{Node: node, Topic: topic}
		s.Rigs[k] = r
	} else {
		cp := *r // copy on write: a snapshot view may share the old one
		r = &cp
		s.Rigs[k] = r
	}
	return r
}

// Quarantined reports whether node is out of topic's service.
func (s *State) Quarantined(node, topic string) bool {
	r := s.Rigs[RigKey(node, topic)]
	return r != nil && r.Quarantined
}

// LeaseOf returns the lease on a device of node, if any.
func (s *State) LeaseOf(node, device string) *Lease { return s.Leases[LeaseKey(node, device)] }

// noteInfra counts an attempt's infrastructure failure (or, infra false, a
// run that did its work) on its node and topic, and quarantines the rig at
// after failures in a row.
func (s *State) noteInfra(node, topic string, infra bool, after int, reason string, at time.Time) {
	if node == "" || after <= 0 {
		return
	}
	cur := s.Rigs[RigKey(node, topic)]
	if !infra {
		if cur != nil && cur.InfraStreak > 0 {
			s.rig(node, topic).InfraStreak = 0
		}
		return
	}
	r := s.rig(node, topic)
	r.InfraStreak++
	if r.InfraStreak >= after && !r.Quarantined {
		r.Quarantined, r.By, r.Since = true, "auto", at
		r.Reason = fmt.Sprintf("%d infrastructure failures in a row; the last: %s", r.InfraStreak, reason)
	}
}

func (s *State) applyQuarantine(c *Quarantine) error {
	if c.Node == "" || c.Topic == "" {
		return fmt.Errorf("%w: a quarantine names a node and a topic", ErrInvalid)
	}
	r := s.rig(c.Node, c.Topic)
	r.Quarantined, r.Reason, r.By, r.Since = true, c.Reason, c.By, c.At
	return nil
}

func (s *State) applyRelease(c *Release) error {
	r := s.Rigs[RigKey(c.Node, c.Topic)]
	if r == nil || !r.Quarantined {
		return fmt.Errorf("%w: %s is not quarantined for %s", ErrConflict, c.Node, c.Topic)
	}
	r = s.rig(c.Node, c.Topic)
	r.Quarantined, r.InfraStreak, r.Reason, r.By, r.Since = false, 0, "", c.By, c.At
	return nil
}

// takeLease gives t's current attempt on node the device, or refuses.
func (s *State) takeLease(t *Task, node, device string, at time.Time, leaseFor time.Duration) error {
	if device == "" {
		return nil
	}
	k := LeaseKey(node, device)
	if l := s.Leases[k]; l != nil {
		return fmt.Errorf("%w: device %s of %s is held by task %s attempt %d", ErrConflict, device, node, l.Task, l.Attempt)
	}
	l := &Lease{Node: node, Device: device, Task: t.ID, Attempt: t.Attempt, Since: at}
	if leaseFor > 0 {
		l.Expires = at.Add(leaseFor)
	}
	s.Leases[k] = l
	t.Device = device
	return nil
}

// endLease releases the device t's attempt holds, if any.
func (s *State) endLease(t *Task, node string) {
	if t.Device == "" {
		return
	}
	k := LeaseKey(node, t.Device)
	if l := s.Leases[k]; l != nil && l.Task == t.ID {
		delete(s.Leases, k)
	}
	t.Device = ""
}

func (s *State) applyLeaseExpire(c *LeaseExpire) error {
	k := LeaseKey(c.Node, c.Device)
	l := s.Leases[k]
	switch {
	case l == nil || l.Task != c.Task || l.Attempt != c.Attempt:
		return fmt.Errorf("%w: device %s of %s is not held by task %s attempt %d", ErrStaleAttempt, c.Device, c.Node, c.Task, c.Attempt)
	case l.Expires.IsZero() || c.At.Before(l.Expires):
		return fmt.Errorf("%w: the lease on %s of %s runs until %v", ErrConflict, c.Device, c.Node, l.Expires)
	}
	delete(s.Leases, k)
	if t := s.Tasks[c.Task]; t != nil && t.Device == c.Device && t.Attempt == c.Attempt {
		t.Device = ""
		s.touch(t.Job)
	}
	return nil
}
