package gossip

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ourci/ourci/node/faults"
)

// cutTransport gives mc a transport that asks cut before each packet and
// stream (Config.Cut): memberlist's NetTransport on mc's bind address,
// wrapped. memberlist makes that transport itself when none is given;
// here it is made the same way, port 0 resolved as memberlist does.
func cutTransport(mc *memberlist.Config, cut func(to string) bool) error {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger,
	})
	if err != nil {
		return fmt.Errorf("gossip: start: %w", err)
	}
	if mc.BindPort == 0 {
		port := nt.GetAutoBindPort()
		mc.BindPort = port
		if mc.AdvertisePort == 0 {
			mc.AdvertisePort = port
		}
	}
	mc.Transport = &cutNet{NetTransport: nt, cut: cut}
	return nil
}

// cutNet is a NetTransport whose sends and dials to cut members fail: a
// packet is dropped (as the network would, silently), a stream fails to
// open or, once open, to carry anything.
type cutNet struct {
	*memberlist.NetTransport
	cut func(to string) bool
}

var _ memberlist.NodeAwareTransport = (*cutNet)(nil)

func (t *cutNet) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.cut(addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *cutNet) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.cut(a.Addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *cutNet) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return faults.Dial(t.cut, addr, func() (net.Conn, error) { return t.NetTransport.DialTimeout(addr, timeout) })
}

func (t *cutNet) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return faults.Dial(t.cut, a.Addr, func() (net.Conn, error) { return t.NetTransport.DialAddressTimeout(a, timeout) })
}
