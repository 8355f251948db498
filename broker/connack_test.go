package broker

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// rawConnectPacket is a CONNECT with every field under the test's control.
func rawConnectPacket(protocol string, level, flags byte, clientID, username, password string) []byte {
	body := appendString(nil, protocol)
	body = append(body, level, flags, 0, 0)
	body = appendString(body, clientID)
	if flags&0x80 != 0 {
		body = appendString(body, username)
	}
	if flags&0x40 != 0 {
		body = appendString(body, password)
	}
	return packet(0x10, body)
}

// TestConnackReturnCodes: every CONNECT refused, by mochi's checks or the
// hub's, gets an MQTT 3.1.1 return code (0x00-0x05), the one IoT Hub sends.
func TestConnackReturnCodes(t *testing.T) {
	e := start(t, func(c *Config) { c.TCPAddr = "127.0.0.1:0" })
	user := iothub.DeviceUsername(host, "d1", "")
	tok := token("d1", key1, time.Hour)
	const userPass, clean = 0xC0, 0x02
	tests := []struct {
		name string
		pk   []byte
		want byte
	}{
		{"accepted", rawConnectPacket("MQTT", 4, userPass|clean, "d1", user, tok), 0x00},
		{"empty password", rawConnectPacket("MQTT", 4, userPass|clean, "d1", user, ""), 0x05},
		{"no password", rawConnectPacket("MQTT", 4, 0x80|clean, "d1", user, ""), 0x05},
		{"bad token", rawConnectPacket("MQTT", 4, userPass|clean, "d1", user, "SharedAccessSignature sr=x&sig=y&se=1"), 0x05},
		{"protocol name MQTT at level 3", rawConnectPacket("MQTT", 3, userPass|clean, "d1", user, tok), 0x01},
		{"MQTT 3.1", rawConnectPacket("MQIsdp", 3, userPass|clean, "d1", user, tok), 0x01},
		{"reserved flag bit", rawConnectPacket("MQTT", 4, userPass|clean|0x01, "d1", user, tok), 0x05},
		{"persistent session without a client id", rawConnectPacket("MQTT", 4, userPass, "", user, tok), 0x02},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", e.s.Addrs().TCP)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a hang guard
			if _, err := c.Write(tt.pk); err != nil {
				t.Fatal(err)
			}
			typ, body, err := readPacket(bufio.NewReader(c))
			if err != nil {
				t.Fatalf("no CONNACK: %v", err)
			}
			if typ != 0x20 || len(body) != 2 {
				t.Fatalf("want a 3.1.1 CONNACK, got type %#x body %x", typ, body)
			}
			if body[1] != tt.want {
				t.Errorf("return code %#02x, want %#02x", body[1], tt.want)
			}
		})
	}
}
