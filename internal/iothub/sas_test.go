package iothub

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// nodeDeviceToken builds a token the way the Node device SDK does: sr is
// encodeURIComponent(host/devices/id) with upper-case %2F, order sr, sig, se.
func nodeDeviceToken(host, id string, key []byte, se int64) string {
	sr := strings.ReplaceAll(url.PathEscape(host+"/devices/"+id), "/", "%2F")
	exp := strconv.FormatInt(se, 10)
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(Sign(key, sr, exp)))
	return "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + exp
}

func TestSASVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	future := now.Add(time.Hour)
	other := []byte("another key, 32 bytes long......")
	tests := []struct {
		name    string
		token   string
		keys    [][]byte
		target  string
		wantErr error
		covers  bool
	}{
		{"node device token", nodeDeviceToken("localhost", "d1", testKey, future.Unix()), [][]byte{testKey}, "localhost/devices/d1", nil, true},
		{"lower-case encoding", strings.ReplaceAll(NewSAS("hub.azure-devices.net/devices/d1", testKey, "", future), "%2F", "%2f"), [][]byte{testKey}, "hub.azure-devices.net/devices/d1", ErrSASSignature, true},
		{"secondary key", NewSAS("h/devices/d1", testKey, "", future), [][]byte{other, testKey}, "h/devices/d1", nil, true},
		{"wrong key", NewSAS("h/devices/d1", testKey, "", future), [][]byte{other}, "h/devices/d1", ErrSASSignature, true},
		{"expired", NewSAS("h/devices/d1", testKey, "", now.Add(-time.Second)), [][]byte{testKey}, "h/devices/d1", ErrSASExpired, true},
		{"expires now", NewSAS("h/devices/d1", testKey, "", now), [][]byte{testKey}, "h/devices/d1", ErrSASExpired, true},
		{"service token raw sr", NewSAS("localhost", testKey, "iothubowner", future), [][]byte{testKey}, "localhost", nil, true},
		{"host case-insensitive", NewSAS("HUB.example/devices/d1", testKey, "", future), [][]byte{testKey}, "hub.example/devices/d1", nil, true},
		{"other device", NewSAS("h/devices/d1", testKey, "", future), [][]byte{testKey}, "h/devices/d10", nil, false},
		{"gateway scope", NewSAS("h/devices", testKey, "", future), [][]byte{testKey}, "h/devices/d1", nil, true},
		{"segment prefix only", NewSAS("h/devices/d", testKey, "", future), [][]byte{testKey}, "h/devices/d1", nil, false},
		{"device id case-sensitive", NewSAS("h/devices/D1", testKey, "", future), [][]byte{testKey}, "h/devices/d1", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseSAS(tt.token)
			if err != nil {
				t.Fatalf("ParseSAS(%q): %v", tt.token, err)
			}
			_, err = tok.Verify(now, tt.keys...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
			if got := tok.CoversResource(tt.target); got != tt.covers {
				t.Fatalf("CoversResource(%q) with sr %q = %v, want %v", tt.target, tok.Resource, got, tt.covers)
			}
		})
	}
}

func TestParseSASFieldOrder(t *testing.T) {
	tok := NewSAS("localhost", testKey, "iothubowner", time.Unix(2_000_000_000, 0))
	// Node's service SDK sends sr, sig, skn, se; put the fields in that order.
	body := strings.TrimPrefix(tok, "SharedAccessSignature ")
	fields := map[string]string{}
	for _, p := range strings.Split(body, "&") {
		k, v, _ := strings.Cut(p, "=")
		fields[k] = v
	}
	reordered := "SharedAccessSignature sr=" + fields["sr"] + "&sig=" + fields["sig"] + "&skn=" + fields["skn"] + "&se=" + fields["se"]
	got, err := ParseSAS(reordered)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyName != "iothubowner" || got.Resource != "localhost" || got.Expiry != 2_000_000_000 {
		t.Fatalf("ParseSAS = %+v", got)
	}
	if _, err := got.Verify(time.Unix(1_000_000_000, 0), testKey); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestParseSASMalformed(t *testing.T) {
	for _, tok := range []string{
		"",
		"sr=a&sig=b&se=1",
		"SharedAccessSignature ",
		"SharedAccessSignature sr=a&se=1",
		"SharedAccessSignature sr=a&sig=AAAA&se=x",
		"SharedAccessSignature sr=a&sig=!!!&se=1",
		"SharedAccessSignature sr=a&sig=AAAA&se=-5",
		"SharedAccessSignature sr=a&sr=b&sig=AAAA&se=1",
		"SharedAccessSignature sr&sig=AAAA&se=1",
		"SharedAccessSignature sr=%zz&sig=AAAA&se=1",
	} {
		if _, err := ParseSAS(tok); !errors.Is(err, ErrSASMalformed) {
			t.Errorf("ParseSAS(%q) = %v, want ErrSASMalformed", tok, err)
		}
	}
}
