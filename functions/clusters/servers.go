package clusters

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kitefn/kitefn/shared/httpapi"
)

// resolveTimeout bounds the DNS lookup of a kubeconfig's server name.
const resolveTimeout = 3 * time.Second

// metadataHosts are cloud instance-metadata endpoints by name (their addresses are in forbiddenRanges).
var metadataHosts = []string{"metadata.google.internal", "metadata.goog", "metadata"}

// forbiddenRange is an address range kitefn refuses to connect to on a user's behalf: a kubeconfig naming one
// would let an API caller reach the service's own host or its cloud credentials (SSRF).
type forbiddenRange struct {
	prefix   netip.Prefix
	what     string
	loopback bool // allowed in one-process mode, where local clusters (kind, minikube) live
}

var forbiddenRanges = []forbiddenRange{
	{netip.MustParsePrefix("169.254.169.254/32"), "the cloud metadata address", false},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "the cloud metadata address", false},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address", false},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address", false},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address", true},
	{netip.MustParsePrefix("::1/128"), "a loopback address", true},
	// 0.0.0.0 and :: connect to the local host.
	{netip.MustParsePrefix("0.0.0.0/32"), "the unspecified address (this host)", true},
	{netip.MustParsePrefix("::/128"), "the unspecified address (this host)", true},
}

// serverPolicy decides which API servers (and proxies) a registered kubeconfig may name.
type serverPolicy struct {
	allowAll      bool
	allowLoopback bool
	allowed       []netip.Prefix
	resolver      *net.Resolver
}

// newServerPolicy: one-process mode (allMode) allows loopback, where local clusters live.
func newServerPolicy(cfg Config, allMode bool) (serverPolicy, error) {
	p := serverPolicy{allowAll: cfg.AllowPrivateServers, allowLoopback: allMode,
		resolver: net.DefaultResolver}
	for _, s := range cfg.AllowedServerCIDRs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		pre, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("KITEFN_ALLOWED_SERVER_CIDRS: %q is not a CIDR (like 10.0.0.0/8): %w", s, err)
		}
		p.allowed = append(p.allowed, pre.Masked())
	}
	return p, nil
}

// check refuses a standalone kubeconfig whose server or proxy-url is, or resolves to, a forbidden address.
// A name that does not resolve is let through: kitefn cannot connect to it either. The check is made at
// registration; it does not follow later DNS changes.
func (p serverPolicy) check(ctx context.Context, kubeconfig []byte) error {
	if p.allowAll {
		return nil
	}
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return invalidKubeconfig(err)
	}
	for _, c := range cfg.Clusters {
		for _, u := range []struct{ field, value string }{{"server", c.Server}, {"proxy-url", c.ProxyURL}} {
			if u.value == "" {
				continue
			}
			if err := p.checkURL(ctx, u.field, u.value); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p serverPolicy) checkURL(ctx context.Context, field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return nil // the kubeconfig checks report malformed URLs
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	refuse := func(format string, args ...any) error {
		return httpapi.Errorf(http.StatusBadRequest, codeServerNotAllowed, "the kubeconfig's %s %s %s; kitefn "+
			"does not connect there (an operator can allow it: KITEFN_ALLOWED_SERVER_CIDRS or "+
			"KITEFN_ALLOW_PRIVATE_SERVERS=true)", field, raw, fmt.Sprintf(format, args...)).WithField("kubeconfig")
	}
	for _, m := range metadataHosts {
		if host == m {
			return refuse("is the cloud metadata service")
		}
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if what := p.forbidden(addr); what != "" {
			return refuse("is %s", what)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := p.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if what := p.forbidden(a); what != "" {
			return refuse("resolves to %s, %s", a.Unmap(), what)
		}
	}
	return nil
}

// forbidden names the forbidden range addr is in, or "" when kitefn may connect to it.
func (p serverPolicy) forbidden(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	for _, a := range p.allowed {
		if a.Contains(addr) {
			return ""
		}
	}
	for _, r := range forbiddenRanges {
		if r.prefix.Contains(addr) && !(r.loopback && p.allowLoopback) {
			return r.what
		}
	}
	return ""
}
