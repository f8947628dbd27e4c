package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/raftfsm"
)

// Jobs and spawns: POST /v1/spawn, GET /v1/status, GET /v1/jobs/{id},
// POST /v1/jobs/{id}/cancel and /approve.

func (s *Server) handleSpawn(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var req api.SpawnRequest
	if !DecodeBody(w, r, &req) {
		return
	}
	c, err := s.Jobs.SpawnCommand(r.Context(), req, p)
	switch {
	case errors.Is(err, ErrNotAccepted):
		WriteError(w, http.StatusForbidden, api.CodeForbidden, err)
		return
	case errors.Is(err, ErrTooLarge):
		WriteError(w, http.StatusRequestEntityTooLarge, api.CodeQuota, err)
		return
	case err != nil:
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, err)
		return
	}
	res, err := s.Writer.Submit(r.Context(), c)
	if errors.Is(err, raftfsm.ErrQuota) {
		q := "job_tasks"
		if c.Spawn.NewJob != nil {
			q = "open_jobs"
		}
		s.Counters.QuotaRefused(q)
	}
	if err != nil {
		WriteLedgerError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, api.SpawnResponse{SchemaVersion: api.SchemaVersion, Job: res.Job, Task: res.Task})
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	c := raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: id, Reason: raftfsm.ReasonCancelled}}
	if _, err := s.Writer.Submit(r.Context(), c); err != nil {
		WriteLedgerError(w, err)
		return
	}
	d, ok := s.Jobs.Job(id)
	if !ok {
		WriteError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no job %s", id))
		return
	}
	WriteJSON(w, http.StatusOK, d)
}

// handleApprove lets a held job (a pull request from a fork) run.
func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	if _, err := s.Writer.Submit(r.Context(), s.Jobs.ApproveCommand(id, r.URL.Query().Get("by"))); err != nil {
		WriteLedgerError(w, err)
		return
	}
	d, _ := s.Jobs.Job(id)
	WriteJSON(w, http.StatusOK, d)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	st := s.Jobs.Status()
	if !p.May(auth.RoleRead) {
		st = confineStatus(st, p.Job)
	}
	WriteJSON(w, http.StatusOK, st)
}

// confineStatus is what a task sees of the status: the mesh (members,
// topics, slots and queue lengths, which it needs to spawn) and of the jobs
// and waiting tasks only its own job's: no other job's repository, commit,
// branch or author.
func confineStatus(st api.Status, job string) api.Status {
	jobs := []api.JobView{}
	for _, j := range st.Jobs {
		if job != "" && j.ID == job {
			jobs = append(jobs, j)
		}
	}
	waiting := []api.Waiting{}
	for _, wt := range st.Waiting {
		if job != "" && wt.Job == job {
			waiting = append(waiting, wt)
		}
	}
	st.Jobs, st.Waiting = jobs, waiting
	return st
}

// handleJob answers a job's detail; with ?index=N it waits (up to ?wait,
// at most 5 minutes) until the job changed past ledger index N.
func (s *Server) handleJob(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	if !MayRead(s.Ledger, p, id) {
		WriteError(w, http.StatusForbidden, api.CodeForbidden, OtherJobError(p, "job "+id))
		return
	}
	var after uint64
	if q := r.URL.Query().Get("index"); q != "" {
		v, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("index %q: %w", q, err))
			return
		}
		after = v
	}
	wait := 30 * time.Second
	if q := r.URL.Query().Get("wait"); q != "" {
		v, err := time.ParseDuration(q)
		if err != nil || v < 0 {
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("wait %q: want a duration", q))
			return
		}
		wait = min(v, 5*time.Minute)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		_, ch := s.Ledger.Watch()
		d, ok := s.Jobs.Job(id)
		if !ok {
			WriteError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no job %s", id))
			return
		}
		if after == 0 || d.Index > after {
			WriteJSON(w, http.StatusOK, d)
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			WriteJSON(w, http.StatusOK, d)
			return
		case <-r.Context().Done():
			return
		}
	}
}
