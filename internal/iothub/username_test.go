package iothub

import (
	"errors"
	"testing"
)

func TestParseUsername(t *testing.T) {
	tests := []struct {
		name, username, clientID string
		host, device, module     string
		params                   map[string]string
		wantErr                  bool
	}{
		{name: "docs", username: "contoso.azure-devices.net/MyDevice01/?api-version=2021-04-12", clientID: "MyDevice01",
			host: "contoso.azure-devices.net", device: "MyDevice01", params: map[string]string{"api-version": "2021-04-12"}},
		{name: "node sdk", username: "localhost/d1/?api-version=2021-04-12&model-id=dtmi:com:example:Thermostat;1&DeviceClientType=azure-iot-device%2F1.18.4%20(node%20v20.20.2%3B%20Debian%2012%3B%20x64)", clientID: "d1",
			host: "localhost", device: "d1", params: map[string]string{"api-version": "2021-04-12", "model-id": "dtmi:com:example:Thermostat;1", "DeviceClientType": "azure-iot-device/1.18.4 (node v20.20.2; Debian 12; x64)"}},
		{name: "c sdk lower-case encoding", username: "h/d1/?api-version=2020-09-30&DeviceClientType=iothubclient%2f1.3.9%20(native%3b%20x)&model-id=dtmi%3acom%3aexample%3aThermostat%3b1", clientID: "d1",
			host: "h", device: "d1", params: map[string]string{"api-version": "2020-09-30", "DeviceClientType": "iothubclient/1.3.9 (native; x)", "model-id": "dtmi:com:example:Thermostat;1"}},
		{name: "plus is not space", username: "h/d1/?DeviceClientType=a+b", clientID: "d1", host: "h", device: "d1", params: map[string]string{"DeviceClientType": "a+b"}},
		{name: "old sdk without ?", username: "h/d1/api-version=2016-11-14&DeviceClientType=x", clientID: "d1",
			host: "h", device: "d1", params: map[string]string{"api-version": "2016-11-14", "DeviceClientType": "x"}},
		{name: "very old sdk", username: "h/d1/DeviceClientType=x", clientID: "d1", host: "h", device: "d1", params: map[string]string{"DeviceClientType": "x"}},
		{name: "no params", username: "h/d1", clientID: "d1", host: "h", device: "d1", params: map[string]string{}},
		{name: "trailing slash", username: "h/d1/", clientID: "d1", host: "h", device: "d1", params: map[string]string{}},
		{name: "module", username: "h/d1/m1/?api-version=2021-04-12", clientID: "d1/m1", host: "h", device: "d1", module: "m1", params: map[string]string{"api-version": "2021-04-12"}},
		{name: "client id mismatch", username: "h/d2/?api-version=1", clientID: "d1", wantErr: true},
		{name: "client id prefix", username: "h/d10/?api-version=1", clientID: "d1", wantErr: true},
		{name: "no host", username: "/d1/", clientID: "d1", wantErr: true},
		{name: "no slash", username: "d1", clientID: "d1", wantErr: true},
		{name: "empty client id", username: "h//", clientID: "", wantErr: true},
		{name: "bad escape", username: "h/d1/?a=%zz", clientID: "d1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseUsername(tt.username, tt.clientID)
			if tt.wantErr {
				if !errors.Is(err, ErrUsername) {
					t.Fatalf("ParseUsername(%q, %q) = %+v, %v; want ErrUsername", tt.username, tt.clientID, u, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseUsername(%q): %v", tt.username, err)
			}
			if u.Host != tt.host || u.DeviceID != tt.device || u.ModuleID != tt.module {
				t.Fatalf("got host %q device %q module %q", u.Host, u.DeviceID, u.ModuleID)
			}
			if len(u.Params) != len(tt.params) {
				t.Fatalf("params = %v, want %v", u.Params, tt.params)
			}
			for k, v := range tt.params {
				if u.Params[k] != v {
					t.Errorf("param %q = %q, want %q", k, u.Params[k], v)
				}
			}
		})
	}
}

func TestDeviceUsernameParses(t *testing.T) {
	u, err := ParseUsername(DeviceUsername("localhost", "dev-1", "fleetsim/1.0 (go)"), "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if u.Params["api-version"] != APIVersion || u.Params["DeviceClientType"] != "fleetsim/1.0 (go)" {
		t.Fatalf("params = %v", u.Params)
	}
}
