package terminal

// This file is the place of the browser page at /terminal/ (to be built; no route yet).

func (f *Function) routePage() {}
