package restapi_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// twinRuleFixtures reads the twin patches that every twin writer accepts
// (verdict "accept") or refuses with 400 ArgumentInvalid ("refuse"), in a
// stable order.
func twinRuleFixtures(t *testing.T, verdict string) (names []string, patches map[string]string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "internal", "iothub", "testdata", "twinrules", verdict, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s fixtures: %v", verdict, err)
	}
	sort.Strings(files)
	patches = map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(f))
		patches[filepath.Base(f)] = string(b)
	}
	return names, patches
}

// TestTwinJobAcceptedOnlyIfItsDevicesAcceptIt: a twin job that PUT
// /jobs/v2 accepts succeeds on every device, and one the twin rules refuse
// is refused at PUT with IoT Hub's 400 ArgumentInvalid body, never accepted
// and then failed device by device. A twin PATCH of the same patch gets the
// same verdict. Among the fixtures: IoT Hub's documented 10-level example
// (accepted), 11 levels, 2^53+1, and keys and strings that are not UTF-8
// (refused).
func TestTwinJobAcceptedOnlyIfItsDevicesAcceptIt(t *testing.T) {
	e := newEnv(t, envOptions{jobs: true})
	e.createDevices("tw-1", "tw-2")
	n := 0
	job := func(patch string) answer {
		n++
		return e.do("PUT", fmt.Sprintf("/jobs/v2/twin-rules-%d", n)+v,
			`{"type":"scheduleUpdateTwin","queryCondition":"*","updateTwin":`+patch+`}`, nil)
	}
	names, patches := twinRuleFixtures(t, "accept")
	for _, name := range names {
		t.Run("accept/"+name, func(t *testing.T) {
			a := job(patches[name])
			if a.status != 200 {
				t.Fatalf("PUT twin job: %d %s", a.status, a.body)
			}
			var j jobResp
			a.json(t, &j)
			j = e.waitJob(j.JobID)
			if j.Status != "completed" || j.Stats.SucceededCount != 2 || j.Stats.FailedCount != 0 {
				t.Errorf("job ended %s with %+v", j.Status, j.Stats)
			}
			if a := e.do("PATCH", "/twins/tw-1"+v, patches[name], map[string]string{"If-Match": "*"}); a.status != 200 {
				t.Errorf("PATCH twin: %d %s", a.status, a.body)
			}
		})
	}
	names, patches = twinRuleFixtures(t, "refuse")
	for _, name := range names {
		t.Run("refuse/"+name, func(t *testing.T) {
			job(patches[name]).wantError(t, 400, "ArgumentInvalid", "")
			e.do("PATCH", "/twins/tw-1"+v, patches[name], map[string]string{"If-Match": "*"}).wantError(t, 400, "ArgumentInvalid", "")
			e.do("PUT", "/twins/tw-1"+v, patches[name], map[string]string{"If-Match": "*"}).wantError(t, 400, "ArgumentInvalid", "")
		})
	}
}

// TestBulkImportRefusesInvalidUTF8: a bulk entry's tags are twin content;
// a key that is not UTF-8 is refused, not stored with U+FFFD in its place.
func TestBulkImportRefusesInvalidUTF8(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.do("POST", "/devices"+v, "[{\"id\":\"bulk-1\",\"importMode\":\"create\",\"tags\":{\"a\xffb\":1}}]", nil).wantError(t, 400, "ArgumentInvalid", "UTF-8")
	if a := e.do("GET", "/devices/bulk-1"+v, "", nil); a.status != 404 {
		t.Errorf("the refused entry was created: %d %s", a.status, a.body)
	}
}
