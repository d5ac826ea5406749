package access

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnavailable marks an authentication that could not be checked (the OIDC issuer cannot be reached): the
// answer is 503, to be retried, not 401.
var ErrUnavailable = errors.New("the identity provider is unavailable")

// Refusal says why a caller may not make a request; its message names what is missing, never a credential.
type Refusal struct{ Message string }

func (e *Refusal) Error() string { return e.Message }

// Authorize decides whether c may make a request matching rule on clusters (the cluster names the request
// selects, resolved from IDs): nil when allowed, a *Refusal when not.
func Authorize(c *Caller, rule Rule, clusters []string) error {
	if c == nil {
		return &Refusal{Message: "no caller"}
	}
	if !c.Has(rule.Role) {
		have := "no role"
		if len(c.Roles) > 0 {
			names := make([]string, len(c.Roles))
			for i, r := range c.Roles {
				names[i] = string(r)
			}
			have = "roles " + strings.Join(names, ", ")
		}
		return &Refusal{Message: fmt.Sprintf("%s %s needs the %s role; %s %q has %s", rule.Verb, rule.Resource,
			rule.Role, c.Kind, c.Name, have)}
	}
	for _, name := range clusters {
		if err := c.CheckCluster(name); err != nil {
			return err
		}
	}
	return nil
}
