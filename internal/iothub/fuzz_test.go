package iothub

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseUsername checks that any CONNECT username either parses into an
// identity that equals the ClientId, or fails with ErrUsername; and that what
// fleetsim's own clients send always parses back.
func FuzzParseUsername(f *testing.F) {
	for _, seed := range []struct{ username, clientID string }{
		{"contoso.azure-devices.net/MyDevice01/?api-version=2021-04-12", "MyDevice01"},
		{"localhost/d1/?api-version=2021-04-12&model-id=dtmi:com:example:Thermostat;1&DeviceClientType=azure-iot-device%2F1.18.4%20(node%20v20.20.2%3B%20Debian%2012%3B%20x64)", "d1"},
		{"h/d1/?api-version=2020-09-30&DeviceClientType=iothubclient%2f1.3.9%20(native%3b%20x)&model-id=dtmi%3acom%3aexample%3aThermostat%3b1", "d1"},
		{"h/d1/?DeviceClientType=a+b", "d1"},
		{"h/d1/api-version=2016-11-14&DeviceClientType=x", "d1"},
		{"h/d1/DeviceClientType=x", "d1"},
		{"h/d1", "d1"},
		{"h/d1/", "d1"},
		{"h/d1/m1/?api-version=2021-04-12", "d1/m1"},
		{"h/d2/?api-version=1", "d1"},
		{"h/d10/?api-version=1", "d1"},
		{"/d1/", "d1"},
		{"h//", ""},
		{"h/d1/?a=%zz", "d1"},
		{"h/d1/?&&=&a==b", "d1"},
		{"localhost:18883/dev/?api-version=2021-04-12", "dev"},
	} {
		f.Add(seed.username, seed.clientID)
	}
	f.Fuzz(func(t *testing.T, username, clientID string) {
		u, err := ParseUsername(username, clientID)
		if err != nil {
			if !errors.Is(err, ErrUsername) {
				t.Fatalf("ParseUsername(%q, %q) error %v does not wrap ErrUsername", username, clientID, err)
			}
		} else {
			if u.Host == "" || strings.Contains(u.Host, "/") {
				t.Fatalf("ParseUsername(%q) host %q", username, u.Host)
			}
			id := u.DeviceID
			if u.ModuleID != "" {
				id += "/" + u.ModuleID
			}
			if id != clientID || u.DeviceID == "" {
				t.Fatalf("ParseUsername(%q, %q) identity %q/%q does not equal the client id", username, clientID, u.DeviceID, u.ModuleID)
			}
			if u.Params == nil {
				t.Fatalf("ParseUsername(%q) has nil Params", username)
			}
		}

		// What fleetsim's clients send must parse back to the same identity.
		host, _, _ := strings.Cut(username, "/")
		dev := strings.ReplaceAll(clientID, "/", "")
		if host == "" || dev == "" {
			return
		}
		sent := DeviceUsername(host, dev, username)
		back, err := ParseUsername(sent, dev)
		if err != nil {
			t.Fatalf("ParseUsername(DeviceUsername(%q, %q)) = %v", host, dev, err)
		}
		if back.Host != host || back.DeviceID != dev || back.Params["DeviceClientType"] != username {
			t.Fatalf("DeviceUsername(%q, %q, %q) parsed back as %+v", host, dev, username, back)
		}
	})
}

// FuzzParseSAS checks that any password either parses into a token whose
// verification and scope checks do not panic, or fails with ErrSASMalformed;
// and that every token NewSAS makes verifies with its key.
func FuzzParseSAS(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	exp := time.Unix(2_000_000_000, 0)
	for _, seed := range []string{
		NewSAS(DeviceResource("localhost", "d1"), key, "", exp),
		NewSAS("localhost", key, "iothubowner", exp),
		"SharedAccessSignature sr=myhub.azure-devices.net%2fdevices%2fdevice1&sig=AAAA&se=1700000000",
		"SharedAccessSignature sig=AAAA&se=1&sr=a&skn=x",
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
		"SharedAccessSignature sr=https://h/devices/&sig=AAAA&se=99999999999999999999",
	} {
		f.Add(seed, "d1")
	}
	now := time.Unix(1_000_000_000, 0)
	f.Fuzz(func(t *testing.T, token, deviceID string) {
		tok, err := ParseSAS(token)
		if err != nil {
			if !errors.Is(err, ErrSASMalformed) {
				t.Fatalf("ParseSAS(%q) error %v does not wrap ErrSASMalformed", token, err)
			}
		} else {
			if i, err := tok.Verify(now, key, nil); err == nil && i != 0 {
				t.Fatalf("Verify matched key %d of one", i)
			}
			_ = tok.CoversResource(DeviceResource("localhost", deviceID))
			_ = tok.CoversResource(token)
		}

		// A device token NewSAS makes for any id verifies with its key only,
		// and covers exactly that device.
		if deviceID == "" || strings.Contains(deviceID, "/") {
			return
		}
		res := DeviceResource("localhost", deviceID)
		made, err := ParseSAS(NewSAS(res, key, "", exp))
		if err != nil {
			t.Fatalf("ParseSAS(NewSAS(%q)) = %v", res, err)
		}
		if made.Resource != res {
			t.Fatalf("resource %q came back as %q", res, made.Resource)
		}
		if i, err := made.Verify(now, []byte("other"), key); err != nil || i != 1 {
			t.Fatalf("Verify = %d, %v; want key 1", i, err)
		}
		if _, err := made.Verify(exp, key); !errors.Is(err, ErrSASExpired) {
			t.Fatalf("Verify at expiry = %v, want ErrSASExpired", err)
		}
		if !made.CoversResource(res) || made.CoversResource(res+"x") {
			t.Fatalf("scope of %q is wrong", res)
		}
	})
}

// FuzzParseDeviceTopic feeds arbitrary topics to the device-topic grammar: it
// must never panic, and a topic it accepts must be one of the device's own.
func FuzzParseDeviceTopic(f *testing.F) {
	for _, seed := range []string{
		"$iothub/methods/res/200/?$rid=1",
		"$iothub/twin/GET/?$rid=abc",
		"$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3",
		"devices/d1/messages/events/a=b&$.ct=application%2Fjson",
		"devices/d2/messages/events/",
		"$iothub/methods/res/abc/?$rid=1",
		"$iothub/twin/res/200/?$rid=1",
		"$iothub/methods/POST/#",
		"",
		"$iothub/",
		"$iothub/twin/GET/?$rid=a%20b",
		"$iothub/twin/GET/?$rid=a+b",
		"$iothub/twin/GET/?$rid=",
		"$iothub/twin/GET/?$rid=1;2",
	} {
		f.Add("d1", seed)
	}
	f.Fuzz(func(t *testing.T, device, topic string) {
		// The fast path for "?$rid=X" agrees with url.ParseQuery.
		if _, q, ok := strings.Cut(topic, "?"); ok {
			rid, props, err := parseRidQuery(topic, "?"+q)
			rid2, props2, err2 := parseRidQueryValues(topic, "?"+q)
			if (err == nil) != (err2 == nil) || rid != rid2 || len(props) != len(props2) {
				t.Errorf("%q: fast path %q %v %v, url.ParseQuery %q %v %v", q, rid, props, err, rid2, props2, err2)
			}
		}
		dt, err := ParseDeviceTopic(device, topic)
		if err != nil {
			return
		}
		if strings.HasPrefix(topic, "devices/") && !strings.HasPrefix(topic, "devices/"+device+"/") {
			t.Errorf("device %q may publish to %q (%+v)", device, topic, dt)
		}
		if !strings.HasPrefix(topic, "$iothub/") && !strings.HasPrefix(topic, "devices/") {
			t.Errorf("accepted %q outside the hub's topics", topic)
		}
	})
}
