package clusters_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/kitefn/kitefn/shared/store"
)

// Named API tokens: issued once by an admin, authenticating with their own role and scope, listed without their
// secret, revoked for good, and every change in the audit log.
func TestNamedTokens(t *testing.T) {
	a := startAPI(t, nil)
	r := a.Do(http.MethodPost, "/api/v1/tokens", map[string]any{"name": "ci", "roles": []string{"viewer"},
		"clusters": []string{"prod-*"}, "expiresIn": "720h"}).Expect(t, http.StatusCreated, "")
	secret, _ := r.JSON["token"].(string)
	if !strings.HasPrefix(secret, "kfn_") || r.JSON["expiresAt"] == nil || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create answer: %s", r.Body)
	}
	a.Do(http.MethodPost, "/api/v1/tokens", map[string]any{"name": "ci", "roles": []string{"viewer"}}).
		Expect(t, http.StatusConflict, "conflict")
	a.Do(http.MethodPost, "/api/v1/tokens", map[string]any{"name": "x", "roles": []string{"root"}}).
		Expect(t, http.StatusBadRequest, "bad_request")

	list := a.Do(http.MethodGet, "/api/v1/tokens", nil).Expect(t, http.StatusOK, "")
	if strings.Contains(string(list.Body), secret) || len(list.Items()) != 1 || list.Items()[0]["token"] != nil ||
		list.Items()[0]["name"] != "ci" {
		t.Fatalf("list: %s", list.Body)
	}
	one := a.Do(http.MethodGet, "/api/v1/tokens/ci", nil).Expect(t, http.StatusOK, "")
	if strings.Contains(string(one.Body), secret) || one.JSON["name"] != "ci" || one.JSON["token"] != nil ||
		!strings.Contains(string(one.Body), `"roles":["viewer"]`) {
		t.Fatalf("get one: %s", one.Body)
	}

	as := func(method, path string, body any) int {
		return a.Do(method, path, body, "Authorization", "Bearer "+secret).Status
	}
	me := a.Do(http.MethodGet, "/api/v1/me", nil, "Authorization", "Bearer "+secret).Expect(t, http.StatusOK, "")
	if me.JSON["name"] != "ci" || me.JSON["kind"] != "token" {
		t.Fatalf("me: %s", me.Body)
	}
	if got := as(http.MethodGet, "/api/v1/clusters", nil); got != http.StatusOK {
		t.Fatalf("viewer list clusters: %d", got)
	}
	if got := as(http.MethodPost, "/api/v1/clusters", map[string]any{"name": "x"}); got != http.StatusForbidden {
		t.Fatalf("viewer register: %d, want 403", got)
	}
	if got := as(http.MethodGet, "/api/v1/tokens", nil); got != http.StatusForbidden {
		t.Fatalf("viewer list tokens: %d, want 403", got)
	}
	if got := as(http.MethodGet, "/api/v1/clusters/dev", nil); got != http.StatusForbidden {
		t.Fatalf("a cluster outside the scope: %d, want 403", got)
	}

	a.Do(http.MethodDelete, "/api/v1/tokens/ci", nil).Expect(t, http.StatusNoContent, "")
	if got := as(http.MethodGet, "/api/v1/clusters", nil); got != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d, want 401", got)
	}
	a.Do(http.MethodDelete, "/api/v1/tokens/ci", nil).Expect(t, http.StatusNotFound, "not_found")
	if r := a.Do(http.MethodGet, "/api/v1/tokens/ci", nil).Expect(t, http.StatusNotFound, "not_found"); !strings.Contains(r.Message(), `"ci"`) {
		t.Fatalf("get of a revoked token: %s", r.Body)
	}

	entries, _, err := a.Platform.Store.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, e := range entries {
		if e.Resource == "tokens" && e.Name == "ci" {
			verbs = append(verbs, e.Verb+" "+e.Who)
		}
	}
	if strings.Join(verbs, ",") != "delete bootstrap,delete bootstrap,create bootstrap,create bootstrap" {
		t.Fatalf("audit of the token changes (newest first): %v", verbs)
	}

	// The same log through GET /api/v1/audit: filtered, paged, admin only.
	page := a.Do(http.MethodGet, "/api/v1/audit?verb=create&limit=1", nil).Expect(t, http.StatusOK, "")
	items := page.Items()
	if len(items) != 1 || items[0]["verb"] != "create" || items[0]["name"] != "ci" || items[0]["who"] != "bootstrap" ||
		int(items[0]["outcome"].(float64)) != http.StatusConflict || page.JSON["continue"] == nil {
		t.Fatalf("audit page 1: %s", page.Body)
	}
	next := a.Do(http.MethodGet, "/api/v1/audit?verb=create&limit=1&continue="+page.JSON["continue"].(string), nil).
		Expect(t, http.StatusOK, "")
	if items := next.Items(); len(items) != 1 || int(items[0]["outcome"].(float64)) != http.StatusCreated {
		t.Fatalf("audit page 2: %s", next.Body)
	}
	a.Do(http.MethodGet, "/api/v1/audit?limit=0", nil).Expect(t, http.StatusBadRequest, "bad_request")
	a.Do(http.MethodGet, "/api/v1/audit?since=yesterday", nil).Expect(t, http.StatusBadRequest, "bad_request")
	if r := a.Do(http.MethodGet, "/api/v1/audit?continue=garbage", nil).Expect(t, http.StatusBadRequest, "invalid"); !strings.Contains(r.Message(), "continue token") || strings.Contains(r.Message(), "cluster") {
		t.Fatalf("a malformed continue token: %s", r.Body)
	}
	if got := as(http.MethodGet, "/api/v1/audit", nil); got != http.StatusUnauthorized {
		t.Fatalf("the revoked token on the audit route: %d, want 401", got)
	}
}
