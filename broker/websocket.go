package broker

import (
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocketPath is where IoT Hub serves MQTT over WebSocket (docs/iothub.md §1.1).
const WebSocketPath = "/$iothub/websocket"

// WebSocketHandler upgrades a request to MQTT over WebSocket and hands the
// connection to the broker. The subprotocol is matched case-insensitively
// (mqtt.js offers "mqtt", the C SDK "MQTT") and echoed as offered.
func (s *Server) WebSocketHandler() http.Handler {
	up := websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var proto string
		for _, p := range websocket.Subprotocols(r) {
			if strings.EqualFold(p, "mqtt") {
				proto = p
				break
			}
		}
		if proto == "" {
			http.Error(w, "MQTT over WebSocket needs the mqtt subprotocol", http.StatusBadRequest)
			return
		}
		hdr := http.Header{"Sec-Websocket-Protocol": {proto}}
		c, err := up.Upgrade(w, r, hdr)
		if err != nil {
			return // the upgrader has answered
		}
		wc := &wsConn{c: c}
		if r.TLS != nil {
			wc.peer = r.TLS.PeerCertificates
		}
		if err := s.ws.push(wc); err != nil {
			c.Close()
		}
	})
}

// wsConn makes a WebSocket connection a byte stream: MQTT packets may span
// binary messages and a message may hold several packets.
type wsConn struct {
	c        *websocket.Conn
	r        io.Reader
	wmu      sync.Mutex
	deadline atomic.Pointer[time.Time] // write deadline, applied by Write
	peer     []*x509.Certificate       // the client certificates of the HTTPS connection
}

// PeerCertificates are the client certificates of the TLS connection the
// WebSocket runs on, for X.509 devices.
func (w *wsConn) PeerCertificates() []*x509.Certificate { return w.peer }

func (w *wsConn) Read(p []byte) (int, error) {
	for {
		if w.r == nil {
			typ, r, err := w.c.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				continue
			}
			w.r = r
		}
		n, err := w.r.Read(p)
		if err == io.EOF {
			w.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// Write sends p as one binary message. gorilla allows one writer at a time,
// and its write deadline may only be set by that writer: SetWriteDeadline
// records the deadline and Write applies it.
func (w *wsConn) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if d := w.deadline.Load(); d != nil {
		_ = w.c.SetWriteDeadline(*d)
	}
	if err := w.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *wsConn) Close() error         { return w.c.Close() }
func (w *wsConn) LocalAddr() net.Addr  { return w.c.LocalAddr() }
func (w *wsConn) RemoteAddr() net.Addr { return w.c.RemoteAddr() }
func (w *wsConn) SetDeadline(t time.Time) error {
	_ = w.SetWriteDeadline(t)
	return w.c.SetReadDeadline(t) // only mochi's reading goroutine sets deadlines
}
func (w *wsConn) SetReadDeadline(t time.Time) error { return w.c.SetReadDeadline(t) }
func (w *wsConn) SetWriteDeadline(t time.Time) error {
	w.deadline.Store(&t)
	return nil
}
