package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node"
)

// gossipMeasure starts N bare gossip agents (gossip.Start, the agent a node
// runs, with the node's encryption and profile) for each N, changes one
// agent's subscriptions (SetMeta, what Node.SetOffer calls) and times until
// every other agent's member view shows the change. The floor: one UDP
// datagram from one socket to each of N-1 others on loopback.
func (r *run) gossipMeasure(ctx context.Context) error {
	for _, n := range r.o.GossipSizes {
		r.progress("gossip: %d agents, %d subscription changes", n, r.o.GossipChanges)
		all, setMeta, err := r.gossipOnce(ctx, n, r.o.GossipChanges)
		if err != nil {
			return fmt.Errorf("N=%d: %w", n, err)
		}
		floor, err := udpFanout(n, r.o.GossipChanges)
		if err != nil {
			return fmt.Errorf("N=%d: udp floor: %w", n, err)
		}
		p50, mx := all.pct(0.5), all.max()
		f50, fmx := floor.pct(0.5), floor.max()
		r.row(Row{Key: fmt.Sprintf("gossip_n%d_p50_ms", n), Measure: fmt.Sprintf("subscription change→every node, N=%d, p50", n), Unit: "ms", OurCI: ms(p50), Floor: ptr(ms(f50)), Ratio: ptr(ms(p50) / ms(f50)),
			Target: "-", Result: "info", FloorIs: "UDP datagram to N-1 loopback sockets"})
		r.row(Row{Key: fmt.Sprintf("gossip_n%d_max_ms", n), Measure: fmt.Sprintf("subscription change→every node, N=%d, max", n), Unit: "ms", OurCI: ms(mx), Floor: ptr(ms(fmx)), Ratio: ptr(ms(mx) / ms(fmx)),
			Target: "≤ 500 ms", Result: passIf(mx <= 500*time.Millisecond), FloorIs: "UDP datagram to N-1 loopback sockets"})
		r.note(MGossip, "N=%d: change → last node saw it: %s; SetMeta returned after %s", n, all.summary(), setMeta.summary())
		r.note(MGossip, "N=%d: floor, one datagram to each of %d loopback sockets: %s", n, n-1, floor.summary())
	}
	if r.o.WAN {
		r.note(MGossip, "WAN profile: memberlist's WAN defaults (gossip every 500 ms to 4 nodes, push/pull every 60 s)")
	} else {
		r.note(MGossip, "LAN profile: gossip every 50 ms to 4 nodes, full push/pull every 5 s (memberlist's LAN default: 200 ms, 3 nodes, 30 s)")
	}
	return nil
}

// gossipOnce runs one cluster of n agents through changes subscription
// changes and returns, per change, the time until the last agent saw it,
// and how long SetMeta blocked.
func (r *run) gossipOnce(ctx context.Context, n, changes int) (all, setMeta dist, err error) {
	key := node.NewSecret().GossipKey()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	metas := make([]gossip.Meta, n)
	agents := make([]*gossip.Gossip, 0, n)
	defer func() {
		var wg sync.WaitGroup
		for _, g := range agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.Shutdown()
			}()
		}
		wg.Wait()
	}()
	for i := 0; i < n; i++ {
		metas[i] = gossip.Meta{Raft: "127.0.0.1:1", HTTP: "127.0.0.1:2", Slots: 4, Topics: []string{"base"}}
		g, err := gossip.Start(gossip.Config{
			Name: "g" + strconv.Itoa(i), Bind: "127.0.0.1:0", Key: key, Meta: metas[i],
			Profile: r.o.gossipProfile(), Logger: logger,
		})
		if err != nil {
			return nil, nil, err
		}
		agents = append(agents, g)
		if i > 0 {
			if _, err := g.Join([]string{agents[rand.IntN(i)].Addr()}); err != nil {
				return nil, nil, err
			}
		}
	}
	limit := scaled(60 * time.Second)
	deadline := time.Now().Add(limit)
	for {
		full := true
		for _, g := range agents {
			if len(g.Members()) != n {
				full = false
				break
			}
		}
		if full {
			break
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%w: %d agents did not all see each other within %s", errTimeout, n, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for c := 0; c < changes; c++ {
		// Start at a random phase of the gossip rounds.
		time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
		k := c % n
		name := "g" + strconv.Itoa(k)
		want := "topic-" + strconv.Itoa(c)
		var wg sync.WaitGroup
		seen := make([]time.Time, n)
		var errMu sync.Mutex
		var werr error
		wctx, cancel := context.WithTimeout(ctx, scaled(15*time.Second))
		for i, g := range agents {
			if i == k {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ch := g.Watch()
					for _, mb := range g.Members() {
						if mb.Name == name && slices.Contains(mb.Meta.Topics, want) {
							seen[i] = time.Now()
							return
						}
					}
					select {
					case <-ch:
					case <-wctx.Done():
						errMu.Lock()
						werr = fmt.Errorf("%w: agent %d never saw change %d", errTimeout, i, c)
						errMu.Unlock()
						return
					}
				}
			}()
		}
		m := metas[k]
		m.Topics = []string{"base", want}
		t0 := time.Now()
		if err := agents[k].SetMeta(m); err != nil {
			cancel()
			return nil, nil, err
		}
		setMeta = append(setMeta, time.Since(t0))
		wg.Wait()
		cancel()
		if werr != nil {
			return nil, nil, werr
		}
		var last time.Time
		for i, t := range seen {
			if i != k && t.After(last) {
				last = t
			}
		}
		all = append(all, last.Sub(t0))
	}
	return all, setMeta, nil
}

// udpFanout sends one datagram from one socket to each of n-1 loopback
// sockets and returns, per round, the time until the last one arrived.
func udpFanout(n, rounds int) (dist, error) {
	src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var dsts []*net.UDPConn
	defer func() {
		for _, d := range dsts {
			d.Close()
		}
	}()
	for i := 0; i < n-1; i++ {
		d, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		dsts = append(dsts, d)
	}
	msg := make([]byte, 256)
	var out dist
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		got := make([]time.Time, len(dsts))
		for i, d := range dsts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 1024)
				d.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, _, err := d.ReadFromUDP(buf); err == nil {
					got[i] = time.Now()
				}
			}()
		}
		time.Sleep(5 * time.Millisecond) // receivers waiting
		t0 := time.Now()
		for _, d := range dsts {
			if _, err := src.WriteToUDP(msg, d.LocalAddr().(*net.UDPAddr)); err != nil {
				return nil, err
			}
		}
		wg.Wait()
		var last time.Time
		for _, t := range got {
			if t.IsZero() {
				return nil, fmt.Errorf("a datagram was lost on loopback")
			}
			if t.After(last) {
				last = t
			}
		}
		out = append(out, last.Sub(t0))
	}
	return out, nil
}
