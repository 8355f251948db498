package restapi_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

func TestValidationErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createDevices("d1")
	big := `{"methodName":"echo","payload":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name         string
		method, path string
		body         string
		hdr          map[string]string
		status       int
		code, msg    string
	}{
		{"missing api-version", "GET", "/devices/d1", "", nil, 400, "ArgumentInvalid", "api-version query parameter is required"},
		{"empty api-version", "GET", "/devices/d1?api-version=", "", nil, 400, "ArgumentInvalid", "api-version query parameter is required"},
		{"api-version not a date", "GET", "/devices/d1?api-version=latest", "", nil, 400, "ArgumentInvalid", `api-version "latest" is not a version date`},
		{"api-version impossible date", "GET", "/devices/d1?api-version=2021-13-45", "", nil, 400, "ArgumentInvalid", "not a valid date"},
		{"malformed query string", "GET", "/devices/d1?api-version=2021-04-12&x=%zz", "", nil, 400, "GenericBadRequest", "malformed query string"},
		{"unknown endpoint", "GET", "/nothing/here" + v, "", nil, 400, "GenericBadRequest", "GET /nothing/here is not an endpoint"},
		{"wrong method", "POST", "/twins/d1" + v, "{}", nil, 400, "GenericBadRequest", "POST /twins/d1 is not an endpoint"},
		{"non-canonical path", "GET", "/devices/../twins/d1" + v, "", nil, 400, "GenericBadRequest", "malformed request path"},
		{"device body not JSON", "PUT", "/devices/d2" + v, "{deviceId:", nil, 400, "ArgumentInvalid", "malformed device identity: invalid JSON at offset 2"},
		{"device body wrong type", "PUT", "/devices/d2" + v, `{"deviceId":"d2","status":5}`, nil, 400, "ArgumentInvalid", `field "status" must be a string, got number`},
		{"device body trailing data", "PUT", "/devices/d2" + v, `{"deviceId":"d2"} {}`, nil, 400, "ArgumentInvalid", "unexpected data after the JSON value"},
		{"device body empty", "PUT", "/devices/d2" + v, " ", nil, 400, "ArgumentInvalid", "the request body is empty"},
		{"device id mismatch", "PUT", "/devices/d2" + v, `{"deviceId":"d3"}`, nil, 400, "ArgumentInvalid", `the body's deviceId "d3" does not match the device id "d2"`},
		{"device id invalid", "PUT", "/devices/bad%2Fid" + v, `{}`, nil, 400, "ArgumentInvalid", "invalid character"},
		{"device exists", "PUT", "/devices/d1" + v, `{}`, nil, 409, "DeviceAlreadyExists", "d1"},
		{"bad top", "GET", "/devices?top=-1&api-version=2021-04-12", "", nil, 400, "ArgumentInvalid", `top "-1" is not a positive integer`},
		{"bulk not an array", "POST", "/devices" + v, `{"id":"x"}`, nil, 400, "ArgumentInvalid", "must be an array"},
		{"bulk null", "POST", "/devices" + v, `null`, nil, 400, "ArgumentInvalid", "got null"},
		{"bulk entry without id", "POST", "/devices" + v, `[{"importMode":"create"}]`, nil, 400, "ArgumentInvalid", "entry 0 has no id"},
		{"bulk entry without mode", "POST", "/devices" + v, `[{"id":"x"}]`, nil, 400, "ArgumentInvalid", "entry 0 (x) has no importMode"},
		{"twin patch null", "PATCH", "/twins/d1" + v, `null`, nil, 400, "ArgumentInvalid", "expected a JSON object, got null"},
		{"twin patch reported", "PATCH", "/twins/d1" + v, `{"properties":{"reported":{"a":1}}}`, nil, 400, "ArgumentInvalid", "reported"},
		{"method body unknown field", "POST", "/twins/d1/methods" + v, `{"methodName":"echo","extra":1}`, nil, 400, "ArgumentInvalid", `unknown field "extra"`},
		{"method body truncated", "POST", "/twins/d1/methods" + v, `{"methodName":"echo"`, nil, 400, "ArgumentInvalid", "the JSON ends early"},
		{"method name missing", "POST", "/twins/d1/methods" + v, `{}`, nil, 400, "ArgumentInvalid", "method name is empty"},
		{"method name invalid", "POST", "/twins/d1/methods" + v, `{"methodName":"a b"}`, nil, 400, "ArgumentInvalid", "invalid character"},
		{"method timeout type", "POST", "/twins/d1/methods" + v, `{"methodName":"echo","responseTimeoutInSeconds":"30"}`, nil, 400, "ArgumentInvalid", `field "responseTimeoutInSeconds" must be an integer, got string`},
		{"connect timeout too long", "POST", "/twins/d1/methods" + v, `{"methodName":"echo","connectTimeoutInSeconds":301}`, nil, 400, "ArgumentInvalid", "connectTimeoutInSeconds must be between 0 and 300"},
		{"body too large", "POST", "/twins/d1/methods" + v, big, nil, 413, "MessageTooLarge", "larger than 1048576 bytes"},
		{"query missing", "POST", "/devices/query" + v, `{}`, nil, 400, "ArgumentInvalid", "has no query"},
		{"query unknown field", "POST", "/devices/query" + v, `{"query":"SELECT * FROM devices","sql":1}`, nil, 400, "ArgumentInvalid", `unknown field "sql"`},
		{"query syntax", "POST", "/devices/query" + v, `{"query":"SELECT * FROM devices WHERE ("}`, nil, 400, "ArgumentInvalid", "column"},
		{"query too long", "POST", "/devices/query" + v, `{"query":"SELECT * FROM devices WHERE deviceId = '` + strings.Repeat("a", 9000) + `'"}`, nil, 400, "ArgumentInvalid", "the limit is 8192"},
		{"page size not a number", "POST", "/devices/query" + v, `{"query":"SELECT * FROM devices"}`, map[string]string{"x-ms-max-item-count": "lots"}, 400, "ArgumentInvalid", `page size "lots"`},
		{"page size zero", "POST", "/devices/query" + v, `{"query":"SELECT * FROM devices"}`, map[string]string{"x-ms-max-item-count": "0"}, 400, "ArgumentInvalid", "not a positive integer"},
		{"jobs without engine", "GET", "/jobs/v2/j1" + v, "", nil, 503, "ServiceUnavailable", "no jobs engine"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(tc.method, tc.path, tc.body, tc.hdr)
			a.wantError(t, tc.status, tc.code, tc.msg)
		})
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createDevices("a1")
	owner := e.policies["iothubowner"]
	now := time.Now()
	sign := func(p string, key []byte, host string, exp time.Time) string {
		return iothub.NewSAS(host, key, p, exp)
	}
	// C# style: sr URL-encoded (lower-case %2f is irrelevant for a bare
	// host), fields in another order.
	csharp := func() string {
		se := "9999999999"
		sr := url.QueryEscape("https://" + hubHost)
		sig := url.QueryEscape(b64sig(owner.SecondaryKey, sr, se))
		return "SharedAccessSignature skn=iothubowner&se=" + se + "&sig=" + sig + "&sr=" + sr
	}
	tests := []struct {
		name, method, path, auth string
		ok                       bool
	}{
		{"owner", "GET", "/devices/a1", sign("iothubowner", owner.PrimaryKey, hubHost, now.Add(time.Hour)), true},
		{"owner secondary key", "GET", "/devices/a1", sign("iothubowner", owner.SecondaryKey, hubHost, now.Add(time.Hour)), true},
		{"host case-insensitive", "GET", "/devices/a1", sign("iothubowner", owner.PrimaryKey, strings.ToUpper(hubHost), now.Add(time.Hour)), true},
		{"C# encoding and field order", "GET", "/devices/a1", csharp(), true},
		{"missing", "GET", "/devices/a1", "", false},
		{"bearer", "GET", "/devices/a1", "Bearer abc", false},
		{"malformed", "GET", "/devices/a1", "SharedAccessSignature sr=" + hubHost + "&sig=%%%&se=1", false},
		{"no skn (device-key style)", "GET", "/devices/a1", sign("", owner.PrimaryKey, hubHost, now.Add(time.Hour)), false},
		{"bad signature", "GET", "/devices/a1", sign("iothubowner", e.policies["service"].PrimaryKey, hubHost, now.Add(time.Hour)), false},
		{"expired", "GET", "/devices/a1", sign("iothubowner", owner.PrimaryKey, hubHost, now.Add(-time.Second)), false},
		{"wrong host", "GET", "/devices/a1", sign("iothubowner", owner.PrimaryKey, "otherhub.azure-devices.net", now.Add(time.Hour)), false},
		{"device scope", "GET", "/devices/a1", sign("iothubowner", owner.PrimaryKey, hubHost+"/devices/a1", now.Add(time.Hour)), false},
		{"unknown policy", "GET", "/devices/a1", sign("nosuch", owner.PrimaryKey, hubHost, now.Add(time.Hour)), false},
		{"registryRead reads devices", "GET", "/devices/a1", e.token("registryRead"), true},
		{"registryRead may not write", "DELETE", "/devices/a1", e.token("registryRead"), false},
		{"registryRead may not read twins", "GET", "/twins/a1", e.token("registryRead"), false},
		{"registryReadWrite writes", "PUT", "/devices/a2", e.token("registryReadWrite"), true},
		{"registryReadWrite may not invoke", "POST", "/twins/a1/methods", e.token("registryReadWrite"), false},
		{"service reads twins", "GET", "/twins/a1", e.token("service"), true},
		{"service invokes", "POST", "/twins/a1/methods", e.token("service"), true},
		{"service queries", "POST", "/devices/query", e.token("service"), true},
		{"service may not read the registry", "GET", "/devices/a1", e.token("service"), false},
		{"device policy opens nothing", "GET", "/twins/a1", e.token("device"), false},
		{"device policy opens nothing 2", "GET", "/statistics/devices", e.token("device"), false},
	}
	bodies := map[string]string{"PUT": `{}`, "POST": `{"methodName":"echo","query":"SELECT * FROM devices"}`}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := bodies[tc.method]
			if tc.path == "/twins/a1/methods" {
				body = `{"methodName":"echo"}`
			} else if tc.path == "/devices/query" {
				body = `{"query":"SELECT * FROM devices"}`
			}
			a := e.do(tc.method, tc.path+v, body, map[string]string{"Authorization": tc.auth})
			if tc.ok {
				if a.status >= 300 {
					t.Errorf("status %d: %s", a.status, a.body)
				}
				return
			}
			a.wantError(t, 401, "IotHubUnauthorizedAccess", "Unauthorized")
			if !strings.Contains(string(a.body), `"Message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized"`) {
				t.Errorf("401 body %s", a.body)
			}
		})
	}
}
