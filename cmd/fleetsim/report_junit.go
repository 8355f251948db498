package main

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// The JUnit XML schema as CI systems (Jenkins, GitLab, GitHub test reporters)
// read it: one testsuite per scenario, one testcase per expectation.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure"`
	Error     *junitFailure `xml:"error"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// renderJUnit renders the report as JUnit XML: the scenario is a testsuite and
// each expectation a testcase, failed ones with the measured detail as the
// failure message. The text report goes to the suite's system-out.
func renderJUnit(r *runner.Report) ([]byte, error) {
	secs := strconv.FormatFloat(time.Duration(r.Duration).Seconds(), 'f', 3, 64)
	s := junitSuite{
		Name:  r.Scenario,
		Tests: len(r.Expectations),
		Time:  secs,
		Properties: []junitProperty{
			{"seed", strconv.FormatInt(r.Seed, 10)},
			{"pacing", r.Pacing},
			{"devices", strconv.Itoa(r.Devices)},
		},
		SystemOut: string(renderText(r)),
	}
	if !r.Started.IsZero() {
		s.Timestamp = r.Started.UTC().Format("2006-01-02T15:04:05")
	}
	if r.Shard != "" {
		s.Properties = append(s.Properties, junitProperty{"shard", r.Shard})
	}
	for _, e := range r.Expectations {
		c := junitCase{Name: e.Description, Classname: "fleetsim." + r.Scenario, Time: "0"}
		if e.Passed {
			c.SystemOut = e.Detail
		} else {
			s.Failures++
			c.Failure = &junitFailure{Message: e.Detail, Type: "ExpectationFailed", Text: e.Description + ": " + e.Detail}
		}
		s.Cases = append(s.Cases, c)
	}
	for _, w := range r.Warnings {
		s.Properties = append(s.Properties, junitProperty{"warning", w})
	}
	if r.Interrupted {
		// An interrupted run is an error of the suite, not a failed expectation.
		msg := "the run was interrupted before it finished; the expectations judge what had happened by then"
		s.Tests++
		s.Errors++
		s.Cases = append(s.Cases, junitCase{Name: "the run finishes", Classname: "fleetsim." + r.Scenario, Time: secs,
			Error: &junitFailure{Message: msg, Type: "Interrupted", Text: msg}})
	}
	all := junitSuites{Name: "fleetsim", Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Time: secs, Suites: []junitSuite{s}}
	b, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode junit report: %w", err)
	}
	out := append([]byte(xml.Header), b...)
	return append(out, '\n'), nil
}
