package leader

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
)

// The autopilot keeps the Raft configuration in line with gossip, the way
// Consul's autopilot does, so the mesh heals itself without an operator:
//
//   - every live member joins Raft as a non-voter (a voter with an empty
//     log would count towards the quorum before it could vote);
//   - a server whose name a live member now carries under another ID (its
//     data directory was wiped or replaced) is removed at once;
//   - a voter gossip has seen dead for Config.DeadServerAfter is removed,
//     one at a time and only while the voters gossip sees alive are a
//     majority of the voters (so a leader cut off from most of gossip
//     removes nobody); a dead non-voter after at least 5 minutes;
//   - while there are fewer than maxVoters voters, the longest-running
//     live non-voter that has caught up, is healthy and may vote is
//     promoted; a voter that gossips --voter=never is demoted.
//
// planRaft is the pure part: what to change, given the configuration, the
// live members and when each server was first seen dead. The Membership
// duty (membership.go) runs it and carries the actions out.

// apKind is one kind of Raft configuration change.
type apKind int

const (
	apAddNonvoter apKind = iota // add, or move to a new address, as a non-voter
	apMoveVoter                 // a voter's address changed
	apPromote
	apDemote
	apRemove
)

func (k apKind) String() string {
	return [...]string{"add non-voter", "move voter", "promote to voter", "demote to non-voter", "remove"}[k]
}

// apAction is one change the autopilot makes.
type apAction struct {
	Kind   apKind
	ID     raft.ServerID
	Addr   raft.ServerAddress
	Reason string
	// Dead: a removal because gossip saw the server dead (not because its
	// name came back under another ID).
	Dead bool
}

// apInput is what planRaft decides from.
type apInput struct {
	Servers   []raft.Server   // the current Raft configuration
	Members   []gossip.Member // live gossip members, this node included
	Self      raft.ServerID   // the leader: never removed or demoted here
	Now       time.Time
	DeadSince map[raft.ServerID]time.Time // updated: when each absent server was first seen dead
	// TrustAbsence: the leader's gossip has run long enough that a member
	// missing from it is dead, not merely not heard from yet.
	TrustAbsence bool
	DeadAfter    time.Duration // voters
	MaxVoters    int
	// CaughtUp reports whether a member's replica is close enough to the
	// leader's to be promoted (it asks the member; called only for the
	// candidate about to be promoted).
	CaughtUp func(gossip.Member) bool
}

// nonvoterDeadAfter is the least time a dead non-voter stays in the
// configuration: a rig switched off for a while keeps its place.
const nonvoterDeadAfter = 5 * time.Minute

// MemberID is the Raft ID a member gossips (its name for binaries that
// used the name as ID).
func MemberID(m gossip.Member) raft.ServerID {
	if m.Meta.ID != "" {
		return raft.ServerID(m.Meta.ID)
	}
	return raft.ServerID(m.Name)
}

// planRaft returns the changes to make now, in order, and whether a member
// still waits for promotion (the loop then looks again soon).
func planRaft(in apInput) (acts []apAction, pending bool) {
	byID := map[raft.ServerID]gossip.Member{}
	byName := map[string]gossip.Member{}
	for _, m := range in.Members {
		byID[MemberID(m)] = m
		byName[m.Name] = m
	}
	known := map[raft.ServerID]raft.Server{}
	voters, liveVoters := 0, 0
	for _, s := range in.Servers {
		known[s.ID] = s
		if s.Suffrage == raft.Voter {
			voters++
			if _, ok := byID[s.ID]; ok {
				liveVoters++
			}
		}
	}

	// Servers no live member carries. Removed before anything is added:
	// Raft refuses a new server at an address an old one still holds.
	byAddr := map[raft.ServerAddress]gossip.Member{}
	for _, m := range in.Members {
		byAddr[raft.ServerAddress(m.Meta.Raft)] = m
	}
	removedVoter := false
	for _, s := range in.Servers {
		if _, alive := byID[s.ID]; alive || s.ID == in.Self {
			delete(in.DeadSince, s.ID)
			continue
		}
		voter := s.Suffrage == raft.Voter
		m, ok := byName[NameOfID(s.ID)]
		if !ok {
			m, ok = byAddr[s.Address] // another member took its address
		}
		if ok {
			// The name lives on under another ID: this server's data
			// directory is gone for good.
			if !voter || (!removedVoter && liveVoters > (voters-1)/2) {
				acts = append(acts, apAction{Kind: apRemove, ID: s.ID, Reason: "its name or address came back with a new data directory: " + m.Name + " as " + string(MemberID(m))})
				if voter {
					voters--
					removedVoter = true
				}
			}
			continue
		}
		if !in.TrustAbsence {
			continue
		}
		since, ok := in.DeadSince[s.ID]
		if !ok {
			in.DeadSince[s.ID] = in.Now
			continue
		}
		dead := in.Now.Sub(since)
		switch {
		case !voter && dead >= max(in.DeadAfter, nonvoterDeadAfter):
			acts = append(acts, apAction{Kind: apRemove, ID: s.ID, Reason: "a non-voter dead for " + dead.Round(time.Second).String(), Dead: true})
		case voter && dead >= in.DeadAfter && !removedVoter && liveVoters > voters/2:
			acts = append(acts, apAction{Kind: apRemove, ID: s.ID, Reason: "a voter dead for " + dead.Round(time.Second).String(), Dead: true})
			voters--
			removedVoter = true
		}
	}

	// Members not in the configuration, or at a new address.
	for _, m := range in.Members {
		if m.Meta.Draining {
			continue // leaving: not added, not promoted
		}
		id, addr := MemberID(m), raft.ServerAddress(m.Meta.Raft)
		s, ok := known[id]
		switch {
		case !ok:
			acts = append(acts, apAction{Kind: apAddNonvoter, ID: id, Addr: addr, Reason: "a new member"})
			pending = true
		case s.Address != addr && s.Suffrage == raft.Voter:
			acts = append(acts, apAction{Kind: apMoveVoter, ID: id, Addr: addr, Reason: "its address changed"})
		case s.Address != addr:
			acts = append(acts, apAction{Kind: apAddNonvoter, ID: id, Addr: addr, Reason: "its address changed"})
		}
	}

	// Demote voters that may not vote; promote the best non-voter while
	// voters are few.
	for _, s := range in.Servers {
		m, alive := byID[s.ID]
		if s.Suffrage == raft.Voter && alive && m.Meta.NoVote && s.ID != in.Self && voters > 1 {
			acts = append(acts, apAction{Kind: apDemote, ID: s.ID, Reason: "it runs with --voter=never"})
			voters--
		}
	}
	if voters >= in.MaxVoters {
		return acts, pending
	}
	var cands []gossip.Member
	for _, s := range in.Servers {
		m, alive := byID[s.ID]
		if s.Suffrage == raft.Voter || !alive || m.Meta.NoVote || !m.Meta.Takes() {
			continue
		}
		cands = append(cands, m)
	}
	slices.SortFunc(cands, func(a, b gossip.Member) int {
		return cmp.Or(cmp.Compare(a.Meta.Since, b.Meta.Since), cmp.Compare(a.Name, b.Name))
	})
	for i, m := range cands {
		if in.CaughtUp != nil && !in.CaughtUp(m) {
			pending = true // catching up: look again soon
			continue
		}
		acts = append(acts, apAction{Kind: apPromote, ID: MemberID(m), Addr: raft.ServerAddress(m.Meta.Raft), Reason: "voters are fewer than " + strconv.Itoa(in.MaxVoters)})
		// One promotion a pass; more next pass if room and candidates remain.
		pending = pending || (i < len(cands)-1 && voters+1 < in.MaxVoters)
		break
	}
	return acts, pending
}

// NameOfID returns the node name a Raft server ID (NAME@hex, or a bare
// name from older binaries) stands for.
func NameOfID(id raft.ServerID) string {
	name, _, _ := strings.Cut(string(id), "@")
	return name
}
