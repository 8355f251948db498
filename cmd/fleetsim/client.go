package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// hubClient is what the client commands need from the hub's REST API. It
// speaks JSON documents, so tables and -o json show what the hub sent.
// Errors are *iothub.Error for the hub's answers, others for transport.
type hubClient interface {
	CreateJob(ctx context.Context, req jobRequest) (json.RawMessage, error)
	GetJob(ctx context.Context, id string) (json.RawMessage, error)
	// ListJobs returns a JSON array; empty filters match everything.
	ListJobs(ctx context.Context, jobType, status string) (json.RawMessage, error)
	CancelJob(ctx context.Context, id string) (json.RawMessage, error)
	CreateDevice(ctx context.Context, id string) (json.RawMessage, error)
	// ListDevices returns a JSON array of device identities.
	ListDevices(ctx context.Context) (json.RawMessage, error)
	GetDevice(ctx context.Context, id string) (json.RawMessage, error)
	DeleteDevice(ctx context.Context, id string) error
	GetTwin(ctx context.Context, id string) (json.RawMessage, error)
	UpdateTwin(ctx context.Context, id string, patch json.RawMessage, etag string) (json.RawMessage, error)
	Invoke(ctx context.Context, id string, req methodRequest) (json.RawMessage, error)
	// Query returns every page of the query's results as one JSON array.
	Query(ctx context.Context, q string) (json.RawMessage, error)
}

// jobRequest is the Jobs v2 create body (docs/iothub.md §5.2).
type jobRequest struct {
	JobID                     string          `json:"jobId"`
	Type                      string          `json:"type"`
	CloudToDeviceMethod       *methodRequest  `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                json.RawMessage `json:"updateTwin,omitempty"`
	QueryCondition            string          `json:"queryCondition"`
	StartTime                 time.Time       `json:"startTime"`
	MaxExecutionTimeInSeconds int64           `json:"maxExecutionTimeInSeconds"`
}

// methodRequest is a direct method call (docs/iothub.md §2.2).
type methodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds,omitempty"`
}

// connection is how to reach a hub: serve's connection.json, or a
// connection string given by flag or environment.
type connection struct {
	HostName                string `json:"hostName"`
	ServiceConnectionString string `json:"serviceConnectionString"`
	CAFile                  string `json:"caFile"`
	HTTPSAddr               string `json:"httpsAddr"`
	MQTTAddr                string `json:"mqttAddr"`
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	connStr string
	data    string
	url     string
	ca      string
	output  string
	timeout time.Duration
}

func addClientFlags(f *flagSet) *clientFlags {
	c := &clientFlags{}
	f.fs.StringVar(&c.connStr, "connection-string", "", "service connection `STRING` (default: from DIR/connection.json)")
	f.fs.StringVar(&c.data, "data", "./fleetsim-data", "`DIR` of a hub run by 'fleetsim serve', for connection.json")
	f.fs.StringVar(&c.url, "url", "", "REST API base `URL` (default: https://<httpsAddr of connection.json>, else https://<HostName>)")
	f.fs.StringVar(&c.ca, "ca", "", "CA certificate `FILE` to trust (default: caFile of connection.json, else the system's)")
	f.fs.StringVar(&c.output, "output", "table", "output `FORMAT`: table for people, json for scripts")
	f.alias("o", "output")
	f.fs.DurationVar(&c.timeout, "request-timeout", 2*time.Minute, "give up on the hub after `DURATION`")
	return c
}

// check validates the client flags.
func (c *clientFlags) check(cmd string) error {
	if c.output != "table" && c.output != "json" {
		return usagef(cmd, "-o %q: want table or json", c.output)
	}
	return nil
}

// resolve works out the connection from the flags and connection.json.
func (c *clientFlags) resolve() (conn connection, baseURL string, tlsConf *tls.Config, err error) {
	file := filepath.Join(c.data, "connection.json")
	b, ferr := os.ReadFile(file)
	switch {
	case ferr == nil:
		if err := json.Unmarshal(b, &conn); err != nil {
			return conn, "", nil, fmt.Errorf("read %s: %w", file, err)
		}
	case errors.Is(ferr, fs.ErrNotExist) && c.connStr != "":
	case errors.Is(ferr, fs.ErrNotExist):
		return conn, "", nil, fmt.Errorf("no hub to talk to: %s does not exist; start 'fleetsim serve --data %s', or pass --connection-string (FLEETSIM_CONNECTION_STRING)", file, c.data)
	default:
		return conn, "", nil, fmt.Errorf("read connection file: %w", ferr)
	}
	if c.connStr != "" {
		conn.ServiceConnectionString = c.connStr
	}
	cs, err := iothub.ParseConnectionString(conn.ServiceConnectionString)
	if err != nil {
		return conn, "", nil, fmt.Errorf("service connection string: %w", err)
	}
	if conn.HostName == "" {
		conn.HostName = cs.HostName
	}
	switch {
	case c.url != "":
		baseURL = strings.TrimRight(c.url, "/")
		if u, err := url.Parse(baseURL); err != nil || u.Scheme == "" || u.Host == "" {
			return conn, "", nil, fmt.Errorf("--url %q: want https://host[:port]", c.url)
		}
	case conn.HTTPSAddr != "":
		baseURL = "https://" + dialable(conn.HTTPSAddr)
	default:
		baseURL = "https://" + cs.HostName
	}
	caFile := c.ca
	if caFile == "" {
		caFile = conn.CAFile
	}
	tlsConf = &tls.Config{ServerName: cs.HostName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return conn, "", nil, fmt.Errorf("CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return conn, "", nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", caFile)
		}
		tlsConf.RootCAs = pool
	}
	return conn, baseURL, tlsConf, nil
}

// dialable turns a listen address into one to dial: an empty or unspecified
// host ("", "0.0.0.0", "::") becomes localhost.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// client connects a client command to the hub.
func (a *app) client(f *flagSet, c *clientFlags) (hubClient, connection, error) {
	if err := c.check(f.name); err != nil {
		return nil, connection{}, err
	}
	conn, base, tlsConf, err := c.resolve()
	if err != nil {
		return nil, conn, err
	}
	dial := a.dialHub
	if dial == nil {
		dial = newHubClient
	}
	hc, err := dial(conn.ServiceConnectionString, base, tlsConf)
	if err != nil {
		return nil, conn, err
	}
	return hc, conn, nil
}

// hubError words an error of a call to the hub for people.
func hubError(err error, what string) error {
	var he *iothub.Error
	if errors.As(err, &he) {
		return fmt.Errorf("%s: the hub said %s: %s", what, he.Code.Name, he.Message)
	}
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: the hub did not answer in time: %w", what, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s: cannot reach the hub: connection refused (is 'fleetsim serve' running?)", what)
	case errors.As(err, &oe):
		return fmt.Errorf("%s: cannot reach the hub: %w", what, oe)
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: the hub's certificate is not trusted (pass --ca FILE): %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
