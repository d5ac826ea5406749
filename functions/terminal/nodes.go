package terminal

import "context"

// This file is the place of the node shells (to be built; no route yet).

// NodeShellConfig configures the node shells.
type NodeShellConfig struct{}

func (c *NodeShellConfig) check() error { return nil }

type shells struct{}

func (f *Function) routeNodeShells() {}

func (f *Function) startNodeShells(ctx context.Context) error { return nil }

func (f *Function) shutdownNodeShells() {}

func (f *Function) stopNodeShells(ctx context.Context) error { return nil }
