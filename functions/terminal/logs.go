package terminal

import "context"

// This file is the place of the live logs (to be built; no route yet).

// LogsConfig configures the live logs.
type LogsConfig struct{}

func (c *LogsConfig) check() error { return nil }

type logStreams struct{}

func (f *Function) routeLogs() {}

func (f *Function) startLogs(ctx context.Context) error { return nil }

func (f *Function) shutdownLogs() {}

func (f *Function) stopLogs(ctx context.Context) error { return nil }
