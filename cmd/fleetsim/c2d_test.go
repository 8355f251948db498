package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
)

func (h *fakeHub) SendC2D(ctx context.Context, id string, m restapi.C2DMessage) (json.RawMessage, error) {
	b, _ := json.Marshal(m)
	return h.answer("SendC2D "+id+" "+string(b), `{"messageId":"m-1","expiryTimeUtc":"2026-12-06T23:00:00Z","queued":2,"durable":false}`)
}

func (h *fakeHub) C2DStatus(ctx context.Context, id string) (json.RawMessage, error) {
	return h.answer("C2DStatus "+id, `{"deviceId":"dev-1","durable":false,"messages":[{"messageId":"m-1","size":5,
"enqueuedTimeUtc":"2026-12-06T22:00:00Z","expiryTimeUtc":"2026-12-06T23:00:00Z","state":"delivered","deliveryCount":1}],
"counts":{"queued":1,"sent":3,"delivered":2,"completed":1,"expired":1,"deadLettered":0,"purged":0}}`)
}

func (h *fakeHub) PurgeC2D(ctx context.Context, id string) (json.RawMessage, error) {
	return h.answer("PurgeC2D "+id, `{"deviceId":"dev-1","totalMessagesPurged":1}`)
}

func TestC2DCommands(t *testing.T) {
	file := filepath.Join(t.TempDir(), "body.bin")
	os.WriteFile(file, []byte{0, 1, 2}, 0o600)
	tests := []struct {
		name     string
		args     []string
		wantCall string
		wantOut  []string
	}{
		{"send", []string{"c2d", "send", "dev-1", "--property", "kind=command", "--property", "a=b=c", "--ttl", "10m", "--message-id", "m-1", "--correlation-id", "c-1", "hello"},
			`SendC2D dev-1 {"data":"hello","messageId":"m-1","correlationId":"c-1","properties":{"a":"b=c","kind":"command"},"ttlSeconds":600}`,
			[]string{"Queued message m-1 for dev-1 (2 waiting, expires 2026-12-06T23:00:00Z)."}},
		{"send binary file", []string{"c2d", "send", "dev-1", "--file", file}, `SendC2D dev-1 {"dataBase64":"AAEC"}`, nil},
		{"send json", []string{"c2d", "send", "dev-1", "-o", "json", "x"}, `SendC2D dev-1 {"data":"x"}`, []string{`"messageId": "m-1"`}},
		{"list", []string{"c2d", "list", "dev-1"}, "C2DStatus dev-1", []string{
			"device dev-1: 1 waiting; sent 3, delivered 2, completed 1, expired 1, dead-lettered 0, purged 0",
			"MESSAGE ID  STATE      DELIVERIES  SIZE  EXPIRES", "m-1         delivered  1           5     2026-12-06T23:00:00Z"}},
		{"purge", []string{"c2d", "purge", "dev-1"}, "PurgeC2D dev-1", []string{"Purged 1 messages of dev-1."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := &fakeHub{}
			code, stdout, stderr := clientApp(t, hub, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got := strings.Join(hub.calls, "\n"); got != tt.wantCall {
				t.Errorf("calls %q, want %q", got, tt.wantCall)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
	for _, args := range [][]string{
		{"c2d", "send", "dev-1"},
		{"c2d", "send", "dev-1", "body", "--file", file},
		{"c2d", "send", "dev-1", "--property", "$.mid=x", "body"},
		{"c2d", "send", "dev-1", "--property", "novalue", "body"},
		{"c2d", "send", "dev-1", "--ttl", "1.5s", "body"},
		{"c2d", "list"},
	} {
		hub := &fakeHub{}
		if code, _, _ := clientApp(t, hub, args...); code != exitUsage || len(hub.calls) != 0 {
			t.Errorf("%q: exit %d, calls %q; want a usage error and no call", args, code, hub.calls)
		}
	}
}
