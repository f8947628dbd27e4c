package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/ourci/ourci/node"
)

// netFlags are join's connection limits (node.Config; 0 takes the
// node's defaults, documented in docs/SECURITY.md).
type netFlags struct {
	headerTimeout, idleTimeout, readTimeout, writeTimeout time.Duration
	perClient, loopback                                   int
	webhookInflight                                       string
}

func (f *netFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.headerTimeout, "http-header-timeout", node.DefaultHTTPHeaderTimeout, "API servers: a request's headers must arrive within this")
	fs.DurationVar(&f.idleTimeout, "http-idle-timeout", node.DefaultHTTPIdleTimeout, "API servers: a keep-alive connection is closed after this long without a request")
	fs.DurationVar(&f.readTimeout, "http-read-timeout", node.DefaultHTTPReadTimeout, "API servers: a request's body must arrive within this (not blob uploads, snapshot restores)")
	fs.DurationVar(&f.writeTimeout, "http-write-timeout", node.DefaultHTTPWriteTimeout, "API servers: a response must be sent within this (not streams: logs, blobs, events, blocking queries)")
	fs.IntVar(&f.perClient, "max-conns-per-client", node.DefaultMaxConnsPerClient, "public API: open connections per client address (IPv6: per /64); -1: no cap")
	fs.IntVar(&f.loopback, "max-conns-loopback", node.DefaultMaxConnsLoopback, "public API: open connections per loopback address (this node's tasks, its CLI, a local proxy); -1: no cap")
	fs.StringVar(&f.webhookInflight, "webhook-inflight", "64m", "GitHub webhook body bytes held unverified at once; past it webhooks are answered 503 with Retry-After")
}

func (f *netFlags) apply(cfg *node.Config) error {
	for name, d := range map[string]time.Duration{"--http-header-timeout": f.headerTimeout, "--http-idle-timeout": f.idleTimeout, "--http-read-timeout": f.readTimeout, "--http-write-timeout": f.writeTimeout} {
		if d <= 0 {
			return fmt.Errorf("%s %v: want a positive duration", name, d)
		}
	}
	for name, n := range map[string]int{"--max-conns-per-client": f.perClient, "--max-conns-loopback": f.loopback} {
		if n == 0 || n < -1 {
			return fmt.Errorf("%s %d: want a positive number, or -1 for no cap", name, n)
		}
	}
	inflight, err := parseSize(f.webhookInflight)
	if err != nil || inflight <= 0 {
		return fmt.Errorf("--webhook-inflight %s: want a positive size, e.g. 64m", f.webhookInflight)
	}
	cfg.HTTPHeaderTimeout, cfg.HTTPIdleTimeout, cfg.HTTPReadTimeout, cfg.HTTPWriteTimeout = f.headerTimeout, f.idleTimeout, f.readTimeout, f.writeTimeout
	cfg.MaxConnsPerClient, cfg.MaxConnsLoopback, cfg.WebhookInflight = f.perClient, f.loopback, inflight
	return nil
}
