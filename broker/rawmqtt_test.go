package broker

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// A minimal MQTT 3.1.1 client side for tests and benchmarks that need to
// control the wire exactly (a device that never reads, 100k connections
// without paho's ten goroutines each).

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendLength(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func packet(typ byte, body []byte) []byte {
	return append(appendLength([]byte{typ}, len(body)), body...)
}

// connectPacket is a CONNECT with username and password, keep-alive 0.
func connectPacket(clientID, username, password string, clean bool) []byte {
	flags := byte(0xC0)
	if clean {
		flags |= 0x02
	}
	body := appendString(nil, "MQTT")
	body = append(body, 4, flags, 0, 0)
	body = appendString(body, clientID)
	body = appendString(body, username)
	body = appendString(body, password)
	return packet(0x10, body)
}

// readPacket reads one packet: its first byte and body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(c&0x7f) * mul
		if c&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, fmt.Errorf("bad remaining length")
		}
		mul *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return typ, body, nil
}

// rawConnect sends CONNECT on c and returns the CONNACK return code.
func rawConnect(c net.Conn, r *bufio.Reader, clientID, username, password string, clean bool) (byte, error) {
	if _, err := c.Write(connectPacket(clientID, username, password, clean)); err != nil {
		return 0, err
	}
	typ, body, err := readPacket(r)
	if err != nil {
		return 0, err
	}
	if typ != 0x20 || len(body) != 2 {
		return 0, fmt.Errorf("want CONNACK, got type %#x body %x", typ, body)
	}
	return body[1], nil
}
