package scenarios_test

import (
	"errors"
	"fmt"

	"github.com/fleetsim/fleetsim/scenarios"
)

func ExampleParse() {
	src := `
name: demo
duration: 1m
devices:
  - count: 4
    idPattern: "dev-{index:02}"
    tags: {building: [43, 44], floor: 1..5}
    behavior:
      methods:
        reset: {latency: {uniform: [10ms, 50ms]}, statuses: {200: 0.9, 500: 0.1}}
timeline:
  - at: 5s
    job: {id: reset-b43, method: reset, condition: "tags.building = 43"}
expect:
  - {job: reset-b43, status: completed, within: 30s}
`
	s, err := scenarios.Parse("demo.yaml", []byte(src))
	if err != nil {
		fmt.Println(err)
		return
	}
	for d := range s.DeviceSpecs(0, 1) {
		fmt.Println(d.ID, d.Tags["building"])
	}
	for _, a := range s.Actions() {
		fmt.Println(a)
	}
	fmt.Println(s.Expectations[0])
	// Output:
	// dev-00 43
	// dev-01 44
	// dev-02 43
	// dev-03 44
	// at 5s: create method job reset-b43 (reset) over tags.building = 43
	// job reset-b43 ends completed, within 30s
}

func ExampleParseError() {
	src := `
name: typo
duraton: 1m
devices:
  - count: -1
    idPattern: "dev-{index}"
`
	_, err := scenarios.Parse("typo.yaml", []byte(src))
	var pe *scenarios.ParseError
	if errors.As(err, &pe) {
		for _, line := range pe.Lines() {
			fmt.Println(line)
		}
	}
	// Output:
	// typo.yaml:2:1: missing required key "duration"
	// typo.yaml:3:1: unknown key "duraton" (did you mean "duration"?)
	// typo.yaml:5:12: devices[0].count: a group needs at least 1 device, got -1
}
