package restapi

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
)

// tlsConnKey is the context key of a request's *tls.Conn.
type tlsConnKey struct{}

// connContext keeps the connection's *tls.Conn in its requests' context:
// net/http fills Request.TLS only when the listener hands out a *tls.Conn
// itself, and hubErrorListener wraps it.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if hc, ok := c.(*hubErrorConn); ok {
		c = hc.Conn
	}
	if tc, ok := c.(*tls.Conn); ok {
		return context.WithValue(ctx, tlsConnKey{}, tc)
	}
	return ctx
}

// withTLSState fills Request.TLS from the connection connContext kept, so
// handlers see the client's certificates (MQTT over WebSocket for X.509
// devices).
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if tc, ok := r.Context().Value(tlsConnKey{}).(*tls.Conn); ok {
				st := tc.ConnectionState()
				r.TLS = &st
			}
		}
		h.ServeHTTP(w, r)
	})
}
