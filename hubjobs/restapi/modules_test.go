package restapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
)

func TestModuleEndpoints(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *restapi.Config) { c.Modules = c.Devices.(*faultRegistry).Registry }})
	e.createDevices("dev-1")

	// Without the device: DeviceNotFound; an unknown module: ModuleNotFound.
	e.do("PUT", "/devices/ghost/modules/m1"+v, `{}`, nil).wantError(t, http.StatusNotFound, "DeviceNotFound", "ghost")
	e.do("GET", "/devices/dev-1/modules/m1"+v, "", nil).wantError(t, http.StatusNotFound, "ModuleNotFound", "m1")
	e.do("GET", "/twins/dev-1/modules/m1"+v, "", nil).wantError(t, http.StatusNotFound, "ModuleNotFound", "m1")
	e.do("POST", "/twins/dev-1/modules/m1/methods"+v, `{"methodName":"x","responseTimeoutInSeconds":5,"connectTimeoutInSeconds":0}`, nil).
		wantError(t, http.StatusNotFound, "ModuleNotFound", "m1")
	e.do("DELETE", "/devices/dev-1/modules/m1"+v, "", map[string]string{"If-Match": "*"}).wantError(t, http.StatusNotFound, "ModuleNotFound", "m1")

	a := e.do("PUT", "/devices/dev-1/modules/m1"+v, `{"moduleId":"m1","deviceId":"dev-1","authentication":{"type":"sas","symmetricKey":{"primaryKey":null,"secondaryKey":null}}}`, nil)
	if a.status != 200 || !strings.Contains(string(a.body), `"moduleId":"m1"`) {
		t.Fatalf("create module: %d %s", a.status, a.body)
	}
	var m struct{ Etag string }
	a.json(t, &m)
	e.do("PUT", "/devices/dev-1/modules/m1"+v, `{}`, nil).wantError(t, http.StatusConflict, "ModuleAlreadyExistsOnDevice", "m1")
	e.do("PUT", "/devices/dev-1/modules/m2"+v, `{"moduleId":"other"}`, nil).wantError(t, http.StatusBadRequest, "ArgumentInvalid", "moduleId")
	e.do("PUT", "/devices/dev-1/modules/m1"+v, `{"managedBy":"x"}`, map[string]string{"If-Match": `"nope"`}).wantError(t, http.StatusPreconditionFailed, "PreconditionFailed", "etag")
	if a := e.do("PUT", "/devices/dev-1/modules/m1"+v, `{"managedBy":"x"}`, map[string]string{"If-Match": `"` + m.Etag + `"`}); a.status != 200 || !strings.Contains(string(a.body), `"managedBy":"x"`) {
		t.Fatalf("update module: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/devices/dev-1/modules"+v, "", nil); a.status != 200 || !strings.HasPrefix(string(a.body), `[{"moduleId":"m1"`) {
		t.Fatalf("list modules: %d %s", a.status, a.body)
	}
	if a := e.do("PATCH", "/twins/dev-1/modules/m1"+v, `{"properties":{"desired":{"a":1}}}`, nil); a.status != 200 || !strings.Contains(string(a.body), `"moduleId":"m1"`) {
		t.Fatalf("patch module twin: %d %s", a.status, a.body)
	}
	if a := e.do("PUT", "/twins/dev-1/modules/m1"+v, `{"tags":{"t":1}}`, map[string]string{"If-Match": "*"}); a.status != 200 || strings.Contains(string(a.body), `"a":1`) {
		t.Fatalf("replace module twin: %d %s", a.status, a.body)
	}
	e.do("POST", "/twins/dev-1/modules/m1/methods"+v, `{"methodName":"x","responseTimeoutInSeconds":5,"connectTimeoutInSeconds":0}`, nil).
		wantError(t, http.StatusNotFound, "DeviceNotOnline", "")
	if a := e.do("DELETE", "/devices/dev-1/modules/m1"+v, "", map[string]string{"If-Match": "*"}); a.status != http.StatusNoContent {
		t.Fatalf("delete module: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/devices/dev-1/modules"+v, "", nil); a.status != 200 || string(a.body) != "[]" {
		t.Fatalf("list after delete: %d %s", a.status, a.body)
	}
	// A module key is not a device id.
	e.do("GET", "/devices/dev-1%2Fm1"+v, "", nil).wantError(t, http.StatusNotFound, "DeviceNotFound", "")
}
