package terminal

import "context"

// This file is the place of the pod terminals, tickets and the WebSocket session layer (to be built; no route yet).

// TerminalConfig configures the pod terminals, tickets and the WebSocket session layer.
type TerminalConfig struct {
	WSConfig
}

func (c *TerminalConfig) check() error { return c.WSConfig.check() }

type terminals struct{}

func (f *Function) routeTerminals() {}

func (f *Function) startTerminals(ctx context.Context) error { return nil }

func (f *Function) shutdownTerminals() {}

func (f *Function) stopTerminals(ctx context.Context) error { return nil }
