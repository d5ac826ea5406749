package resources

// SetImpersonate sets the impersonation seam (the client cache's impersonating clients will replace it).
func (f *Function) SetImpersonate(i Impersonator) { f.impersonate = i }
