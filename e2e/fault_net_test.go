package e2e

// Partitions for the fault suite, made with iptables on the loopback
// interface. Each node binds its own 127.0.x.y address and runs with its own
// group ID (faultGID: 61000 + x*256 + y).
//
// Two chains, both named after this test process so that concurrent runs
// (and their clean-ups) never touch each other's rules:
//
//   - OURCI-FAULT-<pid>[tag], jumped to from INPUT and OUTPUT, drops TCP and UDP
//     from the cut node's address to the others' and back. This catches
//     gossip over UDP, whose socket is bound to the node's address.
//   - OURCI-FAULT-<pid>[tag]-O, jumped to from OUTPUT only (the owner match is
//     valid there only), drops what a node's process sends to the other
//     side's address, matched by the process's group. This is needed because
//     on loopback the kernel gives every outgoing TCP connection the source
//     127.0.0.1 whatever address the listener is bound to: Raft, memberlist's
//     TCP and the HTTP relays all dial without binding, so address rules
//     alone never see them. Dropping one direction of every connection (the
//     dialer's sends, or the other side's sends to the cut node) cuts it.
//
// Nothing else is ever dropped: every rule names one of the mesh's node
// addresses as destination, and either a node address as source or a node
// process's group as owner. The chains are flushed, unlinked and deleted in
// t.Cleanup, also when the test fails; stale chains of test processes that
// no longer run are removed first.

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

type faultNet struct {
	t          *testing.T
	addrChain  string // INPUT and OUTPUT: address rules
	ownerChain string // OUTPUT: owner (group) rules
}

// faultGID is the group ID node processes bound to ip run with: 61000 plus
// the address's last two octets read as a 16-bit number (127.0.0.x gets
// 61000+x).
func faultGID(ip string) uint32 {
	f := strings.Split(ip, ".")
	third, _ := strconv.Atoi(f[len(f)-2])
	last, _ := strconv.Atoi(f[len(f)-1])
	return uint32(61000 + third*256 + last)
}

func iptables(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newFaultNet creates and links the chains, or skips the test loudly when
// iptables is unusable (fails instead with OURCI_REQUIRE_FAULTS=1).
func newFaultNet(t *testing.T) *faultNet {
	t.Helper()
	fn, err := setupFaultNet(t, "")
	if err != nil {
		msg := "FAULT SUITE: partition scenario NOT RUN: iptables is unusable here: " + err.Error() +
			" (needs root and iptables; set OURCI_REQUIRE_FAULTS=1 to make this a failure)"
		fmt.Fprintln(os.Stderr, msg)
		if os.Getenv("OURCI_REQUIRE_FAULTS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return fn
}

// setupFaultNet creates and links the chains (removed in t.Cleanup), or
// says why iptables is unusable here. tag (lower-case letters) tells apart
// the chains of scenarios that may run at once in one test process.
func setupFaultNet(t *testing.T, tag string) (*faultNet, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root (euid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, err
	}
	if err := iptables("-S", "OUTPUT"); err != nil {
		return nil, err
	}
	sweepStaleFaultChains(t)
	pid := os.Getpid()
	fn := &faultNet{t: t, addrChain: fmt.Sprintf("OURCI-FAULT-%d%s", pid, tag), ownerChain: fmt.Sprintf("OURCI-FAULT-%d%s-O", pid, tag)}
	t.Cleanup(fn.teardown) // before creating anything: a half-made set-up is removed too
	for _, args := range [][]string{
		{"-N", fn.addrChain},
		{"-N", fn.ownerChain},
		{"-I", "INPUT", "-j", fn.addrChain},
		{"-I", "OUTPUT", "-j", fn.addrChain},
		{"-I", "OUTPUT", "-j", fn.ownerChain},
	} {
		if err := iptables(args...); err != nil {
			return nil, err
		}
	}
	return fn, nil
}

// cut drops all traffic between the node at ip and the nodes at others.
func (fn *faultNet) cut(ip string, others []string) error {
	for _, o := range others {
		for _, proto := range []string{"tcp", "udp"} {
			for _, pair := range [][2]string{{ip, o}, {o, ip}} {
				if err := iptables("-A", fn.addrChain, "-s", pair[0], "-d", pair[1], "-p", proto, "-j", "DROP"); err != nil {
					return err
				}
			}
		}
		for _, pair := range [][2]string{{ip, o}, {o, ip}} {
			gid := strconv.Itoa(int(faultGID(pair[0])))
			if err := iptables("-A", fn.ownerChain, "-m", "owner", "--gid-owner", gid, "-d", pair[1], "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	return nil
}

// heal removes every cut.
func (fn *faultNet) heal() error {
	if err := iptables("-F", fn.addrChain); err != nil {
		return err
	}
	return iptables("-F", fn.ownerChain)
}

// teardown flushes, unlinks and deletes both chains, reporting what it could
// not undo.
func (fn *faultNet) teardown() {
	for _, err := range removeFaultChains(fn.addrChain, fn.ownerChain) {
		fn.t.Errorf("iptables clean-up: %v", err)
	}
}

// removeFaultChains undoes newFaultNet for the named chains; chains that do
// not exist are not errors.
func removeFaultChains(chains ...string) []error {
	var errs []error
	for _, c := range chains {
		if iptables("-S", c) != nil {
			continue // no such chain
		}
		if err := iptables("-F", c); err != nil {
			errs = append(errs, err)
		}
		for _, parent := range []string{"INPUT", "OUTPUT"} {
			for iptables("-C", parent, "-j", c) == nil {
				if err := iptables("-D", parent, "-j", c); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
		if err := iptables("-X", c); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

var staleChain = regexp.MustCompile(`^-N (OURCI-FAULT-(\d+)[a-z]*(-O)?)$`)

// sweepStaleFaultChains removes the chains of fault-test processes that no
// longer run (a test binary killed by a timeout runs no clean-up).
func sweepStaleFaultChains(t *testing.T) {
	out, err := exec.Command("iptables", "-w", "5", "-S").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		mm := staleChain.FindStringSubmatch(strings.TrimSpace(line))
		if mm == nil {
			continue
		}
		pid, _ := strconv.Atoi(mm[2])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		t.Logf("removing stale iptables chain %s of a test process that is gone", mm[1])
		for _, err := range removeFaultChains(mm[1]) {
			t.Logf("  %v", err)
		}
	}
}
