package console

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// sessionCookie names the console's session cookie.
const sessionCookie = "fleetsim_console"

// loginTokenTTL bounds how long an unused one-time login token is valid.
const loginTokenTTL = 24 * time.Hour

// session is a signed-in browser.
type session struct {
	policy  string
	write   bool
	csrf    string
	expires time.Time
}

// auth keeps the one-time login tokens and the sessions, in memory: a
// restart signs everyone out.
type auth struct {
	hostname string
	policies []Policy
	ttl      time.Duration

	mu       sync.Mutex
	tokens   map[string]time.Time // one-time login token -> expiry
	sessions map[string]*session  // cookie value -> session
}

func newAuth(hostname string, ps []Policy, ttl time.Duration) *auth {
	return &auth{hostname: hostname, policies: ps, ttl: ttl, tokens: map[string]time.Time{}, sessions: map[string]*session{}}
}

func (a *auth) mintToken() string {
	t := randomToken()
	a.mu.Lock()
	a.tokens[t] = time.Now().Add(loginTokenTTL)
	a.mu.Unlock()
	return t
}

// useToken consumes a one-time token: true once, for a token minted and
// not expired.
func (a *auth) useToken(t string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, exp := range a.tokens {
		if subtle.ConstantTimeCompare([]byte(k), []byte(t)) == 1 {
			delete(a.tokens, k)
			return now.Before(exp)
		}
	}
	return false
}

// checkConnectionString finds the policy a service connection string
// names and checks its key; ok is false for anything else.
func (a *auth) checkConnectionString(s string) (Policy, bool) {
	cs, err := iothub.ParseConnectionString(s)
	if err != nil || cs.SharedAccessKeyName == "" || cs.DeviceID != "" || !strings.EqualFold(cs.HostName, a.hostname) {
		return Policy{}, false
	}
	key := cs.Key()
	if len(key) == 0 {
		return Policy{}, false
	}
	for _, p := range a.policies {
		if p.Name != cs.SharedAccessKeyName {
			continue
		}
		for _, k := range p.Keys {
			if len(k) > 0 && subtle.ConstantTimeCompare(k, key) == 1 {
				return p, p.Read
			}
		}
	}
	return Policy{}, false
}

// start makes a session and sets its cookie.
func (a *auth) start(w http.ResponseWriter, policy string, write bool, now time.Time) {
	id := randomToken()
	s := &session{policy: policy, write: write, csrf: randomToken(), expires: now.Add(a.ttl)}
	a.mu.Lock()
	a.sessions[id] = s
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", MaxAge: int(a.ttl / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// session returns the request's live session, or nil.
func (a *auth) session(r *http.Request, now time.Time) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[ck.Value]
	if s == nil || !now.Before(s.expires) {
		return nil
	}
	return s
}

// end forgets the request's session.
func (a *auth) end(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, ck.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// sweep drops expired tokens and sessions.
func (a *auth) sweep(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, exp := range a.tokens {
		if !now.Before(exp) {
			delete(a.tokens, k)
		}
	}
	for k, s := range a.sessions {
		if !now.Before(s.expires) {
			delete(a.sessions, k)
		}
	}
}

// sameOrigin reports whether a state-changing request comes from the
// console's own pages: its Origin (or, failing that, Referer) is this host
// over https. A request with neither is refused.
func sameOrigin(r *http.Request) bool {
	want := "https://" + r.Host
	if o := r.Header.Get("Origin"); o != "" {
		return o == want
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		return err == nil && u.Scheme == "https" && u.Host == r.Host
	}
	return false
}

// csrfOK checks the request's X-CSRF-Token header against the session's.
func csrfOK(r *http.Request, s *session) bool {
	h := r.Header.Get("X-CSRF-Token")
	return h != "" && subtle.ConstantTimeCompare([]byte(h), []byte(s.csrf)) == 1
}
