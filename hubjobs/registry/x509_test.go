package registry_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/regstore"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

const (
	sha1Thumb   = "0123456789ABCDEF0123456789ABCDEF01234567"
	sha256Thumb = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func ptr(s string) *string { return &s }

func TestX509DeviceCreate(t *testing.T) {
	tests := []struct {
		name     string
		auth     registry.Authentication
		wantType string
		wantErr  string
	}{
		{name: "thumbprints infer selfSigned", auth: registry.Authentication{X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: ptr(sha1Thumb), SecondaryThumbprint: ptr(sha256Thumb)}}, wantType: "selfSigned"},
		{name: "selfSigned, primary only", auth: registry.Authentication{Type: "selfSigned", X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: ptr(sha1Thumb)}}, wantType: "selfSigned"},
		{name: "selfSigned, colons", auth: registry.Authentication{Type: "selfSigned", X509Thumbprint: registry.X509Thumbprint{SecondaryThumbprint: ptr("01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67")}}, wantType: "selfSigned"},
		{name: "certificateAuthority", auth: registry.Authentication{Type: "certificateAuthority"}, wantType: "certificateAuthority"},
		{name: "sas by default", wantType: "sas"},
		{name: "selfSigned without thumbprints", auth: registry.Authentication{Type: "selfSigned"}, wantErr: "ArgumentInvalid"},
		{name: "selfSigned, short thumbprint", auth: registry.Authentication{Type: "selfSigned", X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: ptr("ABCD")}}, wantErr: "ArgumentInvalid"},
		{name: "selfSigned, not hex", auth: registry.Authentication{Type: "selfSigned", X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: ptr(strings.Repeat("Z", 40))}}, wantErr: "ArgumentInvalid"},
		{name: "selfSigned with keys", auth: registry.Authentication{Type: "selfSigned", SymmetricKey: registry.SymmetricKey{PrimaryKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: ptr(sha1Thumb)}}, wantErr: "ArgumentInvalid"},
		{name: "sas with thumbprints", auth: registry.Authentication{Type: "sas", X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: ptr(sha1Thumb)}}, wantErr: "ArgumentInvalid"},
		{name: "certificateAuthority with thumbprints", auth: registry.Authentication{Type: "certificateAuthority", X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: ptr(sha1Thumb)}}, wantErr: "ArgumentInvalid"},
		{name: "none", auth: registry.Authentication{Type: "none"}, wantErr: "ArgumentInvalid"},
	}
	r, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, tt := range tests {
		id := "dev" + string(rune('a'+i))
		d, err := r.CreateDevice(context.Background(), registry.Device{DeviceID: id, Authentication: tt.auth})
		if tt.wantErr != "" {
			if err == nil || iothub.AsError(err).Code.Name != tt.wantErr {
				t.Errorf("%s: err = %v, want %s", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if d.Authentication.Type != tt.wantType {
			t.Errorf("%s: type %q, want %q", tt.name, d.Authentication.Type, tt.wantType)
		}
		b, _ := json.Marshal(d)
		var shown struct {
			Authentication struct {
				SymmetricKey   map[string]*string `json:"symmetricKey"`
				X509Thumbprint map[string]*string `json:"x509Thumbprint"`
			} `json:"authentication"`
		}
		if err := json.Unmarshal(b, &shown); err != nil {
			t.Fatal(err)
		}
		keys, thumbs := shown.Authentication.SymmetricKey, shown.Authentication.X509Thumbprint
		if tt.wantType == "sas" {
			if keys["primaryKey"] == nil || keys["secondaryKey"] == nil || thumbs["primaryThumbprint"] != nil {
				t.Errorf("%s: sas device shows %s", tt.name, b)
			}
		} else if keys["primaryKey"] != nil || keys["secondaryKey"] != nil {
			t.Errorf("%s: X.509 device shows keys: %s", tt.name, b)
		}
		if tt.wantType == "selfSigned" && thumbs["primaryThumbprint"] == nil && thumbs["secondaryThumbprint"] == nil {
			t.Errorf("%s: no thumbprints shown: %s", tt.name, b)
		}
		tw, err := r.GetTwin(id)
		if err != nil || tw.AuthenticationType != tt.wantType {
			t.Errorf("%s: twin authenticationType %q, %v", tt.name, tw.AuthenticationType, err)
		}
		a, err := r.Authentication(id)
		if err != nil || a.Type != tt.wantType {
			t.Errorf("%s: Authentication = %+v, %v", tt.name, a, err)
		}
	}
}

// TestX509DeviceUpdateAndRestart: a device changes between SAS and X.509,
// and its authentication survives a restart.
func TestX509DeviceUpdateAndRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	st, err := regstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.New(registry.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: "d"}); err != nil {
		t.Fatal(err)
	}
	self := registry.Authentication{Type: "selfSigned", X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: ptr(strings.ToLower(sha1Thumb)), SecondaryThumbprint: ptr(sha256Thumb)}}
	d, err := r.UpdateDevice(ctx, registry.Device{DeviceID: "d", Authentication: self}, "*")
	if err != nil {
		t.Fatal(err)
	}
	if d.Authentication.Type != "selfSigned" || d.Authentication.SymmetricKey.PrimaryKey != "" || *d.Authentication.X509Thumbprint.PrimaryThumbprint != sha1Thumb {
		t.Fatalf("after update to selfSigned: %+v", d.Authentication)
	}
	// An update that names no authentication keeps it.
	if d, err = r.UpdateDevice(ctx, registry.Device{DeviceID: "d", Status: "enabled"}, "*"); err != nil || d.Authentication.Type != "selfSigned" {
		t.Fatalf("update without authentication: %+v %v", d.Authentication, err)
	}
	if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: "ca", Authentication: registry.Authentication{Type: "certificateAuthority"}}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.Close()
	st.Close()

	st, err = regstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err = registry.New(registry.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runCtx, cancel = context.WithCancel(ctx)
	go func() { done <- r.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()
	a, err := r.Authentication("d")
	if err != nil || a.Type != "selfSigned" || a.Thumbprints != [2]string{sha1Thumb, strings.ToUpper(sha256Thumb)} || a.Primary != nil {
		t.Fatalf("selfSigned after restart: %+v %v", a, err)
	}
	if a, err := r.Authentication("ca"); err != nil || a.Type != "certificateAuthority" {
		t.Fatalf("certificateAuthority after restart: %+v %v", a, err)
	}
	// Back to SAS: fresh keys.
	d, err = r.UpdateDevice(ctx, registry.Device{DeviceID: "d", Authentication: registry.Authentication{Type: "sas"}}, "*")
	if err != nil || d.Authentication.Type != "sas" || d.Authentication.SymmetricKey.PrimaryKey == "" || d.Authentication.X509Thumbprint.PrimaryThumbprint != nil {
		t.Fatalf("back to sas: %+v %v", d.Authentication, err)
	}
}
