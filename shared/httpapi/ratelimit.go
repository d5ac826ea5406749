package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// CodeRateLimited is the error code of a 429: the caller sent more than its rate; Retry-After says when to retry.
const CodeRateLimited = "rate_limited"

// DefaultRateLimitCallers bounds how many callers' limiters are kept: the least recently seen is forgotten (and
// starts again with a full burst), so memory stays bounded whatever the number of callers.
const DefaultRateLimitCallers = 10000

// RateLimit is a token bucket per caller: PerSecond requests a second with bursts of Burst. PerSecond 0 turns
// it off. Callers bounds the limiters kept (DefaultRateLimitCallers when 0).
type RateLimit struct {
	PerSecond float64
	Burst     int
	Callers   int
}

// Limit wraps next with the per-caller limit; key names the caller of a request (this package knows no
// identities, so the runtime passes one that reads the authenticated caller). Over the limit the request is
// answered 429 rate_limited with Retry-After in whole seconds.
func (l RateLimit) Limit(key func(*http.Request) string, next http.Handler) (http.Handler, error) {
	if l.PerSecond <= 0 {
		return next, nil
	}
	size := l.Callers
	if size <= 0 {
		size = DefaultRateLimitCallers
	}
	cache, err := lru.New[string, *rate.Limiter](size)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex // makes get-or-create atomic, so two first requests of a caller share one limiter
	limiter := func(k string) *rate.Limiter {
		mu.Lock()
		defer mu.Unlock()
		if lim, ok := cache.Get(k); ok {
			return lim
		}
		lim := rate.NewLimiter(rate.Limit(l.PerSecond), l.Burst)
		cache.Add(k, lim)
		return lim
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := limiter(key(r)).Reserve()
		if !res.OK() {
			WriteError(w, r, Errorf(http.StatusTooManyRequests, CodeRateLimited, "request rate limit reached"))
			return
		}
		if d := res.Delay(); d > 0 {
			res.Cancel() // the request is refused, so it must not use up the caller's future tokens
			secs := int(math.Ceil(d.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			WriteError(w, r, Errorf(http.StatusTooManyRequests, CodeRateLimited,
				"request rate limit of %g per second (burst %d) reached; retry in %d s", l.PerSecond, l.Burst, secs))
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}
