package leader

import (
	"context"

	"github.com/ourci/ourci/raftfsm"
)

// Queue asks the dispatcher to assign queued tasks (Kick) whenever the
// ledger or the membership changed and something is queued: a task that
// waited for a node that serves its topic gets one as soon as it joins.
type Queue struct {
	Ledger  Ledger
	Members Members
	Kick    func()
}

func (Queue) Name() string { return "queue" }

func (q Queue) Run(ctx context.Context) {
	for {
		_, fch := q.Ledger.Watch()
		gch := q.Members.Watch()
		queued := false
		q.Ledger.Read(func(s *raftfsm.State, _ uint64) { queued = len(s.Queued()) > 0 })
		if queued {
			q.Kick()
		}
		select {
		case <-ctx.Done():
			return
		case <-fch:
		case <-gch:
		}
	}
}
