package restapi

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// netHTTPErrorHeaders is what net/http writes after the status line of the
// answers it gives on its own, to requests it cannot parse: a malformed
// request line or URL, headers over MaxHeaderBytes, a transfer coding it
// does not know. No handler answer looks like it: net/http adds a Date
// header to those.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// hubErrorListener hands out connections that turn net/http's plain-text
// answers into IoT Hub's error JSON.
type hubErrorListener struct {
	net.Listener
	s *Server
}

// Accept implements net.Listener.
func (l hubErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &hubErrorConn{Conn: c, s: l.s}, nil
}

// hubErrorConn rewrites, on the way out, an answer net/http wrote itself.
type hubErrorConn struct {
	net.Conn
	s *Server
}

// Write implements net.Conn.
func (c *hubErrorConn) Write(p []byte) (int, error) {
	if b, ok := c.s.rewriteNetHTTPError(p); ok {
		if _, err := c.Conn.Write(b); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// rewriteNetHTTPError returns IoT Hub's form of one of net/http's own error
// answers: the same status, iothub-errorcode GenericBadRequest, and the
// error body the SDKs parse. ok is false for anything else.
func (s *Server) rewriteNetHTTPError(p []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok {
		return nil, false
	}
	line, text, ok := bytes.Cut(rest, []byte(netHTTPErrorHeaders))
	if !ok || bytes.ContainsAny(line, "\r\n") || len(line) < 3 {
		return nil, false
	}
	status, err := strconv.Atoi(string(line[:3]))
	if err != nil || status < 400 || status > 599 {
		return nil, false
	}
	msg := strings.TrimSpace(string(text))
	if m, ok := strings.CutPrefix(msg, strconv.Itoa(status)+" "); ok {
		msg = m
	}
	he := &iothub.Error{Code: iothub.CodeGenericBadRequest, Message: "the request could not be read: " + msg}
	rid := requestID("")
	now := time.Now()
	body := he.HTTPBody(trackingID(rid), now)
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %s\r\nContent-Type: %s\r\niothub-errorcode: %s\r\nx-ms-request-id: %s\r\nDate: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		line, jsonContentType, he.Code.Name, rid, now.UTC().Format(http.TimeFormat), len(body))
	b.Write(body)
	return b.Bytes(), true
}
