package executor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// outputDelay bounds how long Wait keeps copying output after the leader has
// exited and the rest of its group has been killed. Only a process that left
// the group (setsid) without a cgroup to catch it can hold the pipe open
// that long.
const outputDelay = 2 * time.Second

// hostProcess is a Process started by Host.
type hostProcess struct {
	cmd   *exec.Cmd
	pgid  int     // the leader's pid; valid while the leader is unreaped
	cg    *cgroup // the attempt's cgroup; nil without Host.Cgroups
	grace time.Duration

	mu     sync.Mutex
	reaped bool // set (under mu) just before the leader is reaped; no signals after it

	stopOnce sync.Once

	done    chan struct{} // closed once code and err are final
	code    int
	err     error
	cleanup error // the cgroup could not be emptied or removed (Destroy's error)
}

// newHostProcess takes over a started cmd whose output is readable from r,
// and starts copying the output and waiting for the leader.
func newHostProcess(cmd *exec.Cmd, r *os.File, out io.Writer, grace time.Duration, cg *cgroup) *hostProcess {
	p := &hostProcess{
		cmd:   cmd,
		pgid:  cmd.Process.Pid,
		cg:    cg,
		grace: grace,
		done:  make(chan struct{}),
	}
	copied := make(chan struct{})
	go drain(r, out, copied)
	go p.wait(r, copied)
	return p
}

// wait runs in its own goroutine and produces the result of Wait.
func (p *hostProcess) wait(r *os.File, copied <-chan struct{}) {
	defer close(p.done)
	// Learn that the leader exited without reaping it, so that its pid (the
	// group id) cannot be reused while the leftovers of the group are killed.
	werr := waitExited(p.cmd.Process.Pid)
	p.mu.Lock()
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL) // a task's leftovers must not outlive it
	if p.cg != nil {
		_ = p.cg.kill() // nor those that left the group; destroy reports a failure
	}
	p.reaped = true
	p.mu.Unlock()

	err := p.cmd.Wait()
	timer := time.NewTimer(outputDelay)
	select {
	case <-copied:
	case <-timer.C:
		// Someone outside the group holds the pipe: stop reading.
	}
	timer.Stop()
	r.Close() // unblocks drain if it is still reading
	<-copied
	if p.cg != nil {
		// Wait returns once nothing of the attempt runs any more.
		p.cleanup = p.cg.destroy()
	}

	st := p.cmd.ProcessState
	if st == nil {
		if werr != nil {
			err = werr
		}
		p.code, p.err = -1, fmt.Errorf("executor: wait for pid %d: %w", p.pgid, err)
		return
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		p.code = 128 + int(ws.Signal())
	default:
		p.code = st.ExitCode()
	}
}

// Wait implements Process.
func (p *hostProcess) Wait() (int, error) {
	<-p.done
	return p.code, p.err
}

// Stop implements Process.
func (p *hostProcess) Stop() {
	p.stopOnce.Do(func() {
		if !p.signal(syscall.SIGTERM) {
			return
		}
		go func() {
			timer := time.NewTimer(p.grace)
			defer timer.Stop()
			select {
			case <-p.done:
			case <-timer.C:
				p.signal(syscall.SIGKILL)
			}
		}()
	})
}

// Destroy implements Process. Its error says that the attempt's cgroup
// could not be emptied or removed, or that waiting failed.
func (p *hostProcess) Destroy() error {
	p.signal(syscall.SIGKILL)
	_, err := p.Wait()
	return errors.Join(err, p.cleanup)
}

// signal sends sig to the whole group unless the leader has been reaped, and
// reports whether it did. SIGKILL kills the whole cgroup too.
func (p *hostProcess) signal(sig syscall.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return false
	}
	_ = syscall.Kill(-p.pgid, sig)
	if sig == syscall.SIGKILL && p.cg != nil {
		_ = p.cg.kill()
	}
	return true
}

// waitExited blocks until the child pid has exited, leaving it unreaped
// (waitid with WNOWAIT), as os does internally before it reaps a child.
func waitExited(pid int) error {
	const pPID = 1         // idtype_t P_PID
	var siginfo [16]uint64 // siginfo_t is 128 bytes on Linux; its contents are not needed
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&siginfo[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if e != syscall.EINTR {
			if e != 0 {
				return e
			}
			return nil
		}
	}
}

// Pid is the process group leader's PID (the group's ID too: every task
// runs in its own process group).
func (p *hostProcess) Pid() int { return p.cmd.Process.Pid }
