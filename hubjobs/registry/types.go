package registry

import (
	"time"
)

// zeroTime is how IoT Hub writes an unset time (docs/iothub.md §3.1).
const zeroTime = "0001-01-01T00:00:00Z"

// Device statuses and connection states as IoT Hub spells them in JSON (docs/iothub.md §4.3).
const (
	StatusEnabled       = "enabled"
	StatusDisabled      = "disabled"
	StateConnected      = "Connected"
	StateDisconnected   = "Disconnected"
	AuthenticationSAS   = "sas"
	defaultListMaxItems = 1000
)

// Device is a device identity as the registry REST API shows it (docs/iothub.md
// §4.3). As input (CreateDevice, UpdateDevice) only deviceId, status,
// statusReason, authentication.symmetricKey and capabilities are read; the
// rest is computed.
type Device struct {
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"`
	Etag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	Status                     string         `json:"status"`
	StatusReason               *string        `json:"statusReason"`
	ConnectionStateUpdatedTime string         `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          string         `json:"statusUpdatedTime"`
	LastActivityTime           string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               Capabilities   `json:"capabilities"`
	DeviceScope                *string        `json:"deviceScope"`
	ParentScopes               []string       `json:"parentScopes"`
}

// Authentication holds a device's credentials: type "sas" with symmetric
// keys, "selfSigned" with X.509 thumbprints, or "certificateAuthority".
type Authentication struct {
	SymmetricKey   SymmetricKey   `json:"symmetricKey"`
	X509Thumbprint X509Thumbprint `json:"x509Thumbprint"`
	Type           string         `json:"type"`
}

// SymmetricKey is a device's primary and secondary key, base64. Empty keys
// in a create request mean "generate" (docs/sdk-notes.md §1.4).
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint is a self-signed device's certificate thumbprints (hex
// SHA-1 or SHA-256); null for other devices.
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Capabilities of a device.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// Twin is a device twin as the service API shows it (docs/iothub.md §3.1),
// including $metadata and $version inside properties.desired and
// properties.reported. Its maps share structure with the registry's state:
// treat them as read-only.
type Twin struct {
	DeviceID                  string         `json:"deviceId"`
	ModuleID                  string         `json:"moduleId,omitempty"`
	Etag                      string         `json:"etag"`
	DeviceEtag                string         `json:"deviceEtag"`
	Status                    string         `json:"status,omitempty"` // empty for a module twin
	StatusReason              *string        `json:"statusReason,omitempty"`
	StatusUpdateTime          string         `json:"statusUpdateTime"`
	ConnectionState           string         `json:"connectionState"`
	LastActivityTime          string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount int            `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string         `json:"authenticationType"`
	X509Thumbprint            X509Thumbprint `json:"x509Thumbprint"`
	ModelID                   string         `json:"modelId"`
	Version                   int64          `json:"version"`
	Tags                      map[string]any `json:"tags,omitempty"`
	Properties                TwinProperties `json:"properties"`
	Capabilities              Capabilities   `json:"capabilities"`
}

// TwinProperties holds the desired and reported sections, each with
// $metadata and $version.
type TwinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// ExportImportDevice is one entry of a bulk registry request (docs/iothub.md §4.3):
// note "id", not "deviceId".
type ExportImportDevice struct {
	ID             string          `json:"id"`
	ImportMode     string          `json:"importMode"`
	ETag           string          `json:"eTag,omitempty"`
	Status         string          `json:"status,omitempty"`
	StatusReason   *string         `json:"statusReason,omitempty"`
	Authentication *Authentication `json:"authentication,omitempty"`
	TwinETag       string          `json:"twinETag,omitempty"`
	Tags           map[string]any  `json:"tags,omitempty"`
	Properties     *BulkProperties `json:"properties,omitempty"`
	Capabilities   *Capabilities   `json:"capabilities,omitempty"`
}

// BulkProperties are the twin properties of a bulk entry; only desired is
// applied (reported properties belong to the device).
type BulkProperties struct {
	Desired map[string]any `json:"desired,omitempty"`
}

// BulkResult answers a bulk registry request (BulkRegistryOperationResult).
type BulkResult struct {
	IsSuccessful bool          `json:"isSuccessful"`
	Errors       []BulkError   `json:"errors"`
	Warnings     []BulkWarning `json:"warnings"`
}

// BulkError is one failed entry of a bulk request.
type BulkError struct {
	DeviceID    string `json:"deviceId"`
	ErrorCode   string `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
	ModuleID    string `json:"moduleId,omitempty"`
	Operation   string `json:"operation"`
}

// BulkWarning is one warning of a bulk request.
type BulkWarning struct {
	DeviceID      string `json:"deviceId"`
	WarningCode   string `json:"warningCode"`
	WarningStatus string `json:"warningStatus"`
}

// Statistics answers GET /statistics/devices (docs/iothub.md §4.4).
type Statistics struct {
	TotalDeviceCount    int `json:"totalDeviceCount"`
	EnabledDeviceCount  int `json:"enabledDeviceCount"`
	DisabledDeviceCount int `json:"disabledDeviceCount"`
}

// record is what the registry keeps, and persists, per device. A published
// record is immutable: writers build a new one (sections are copy-on-write,
// see merge) and swap it in under the entry's lock, so readers may use a
// record they loaded without holding any lock.
type record struct {
	ID              string         `json:"id"`
	Module          string         `json:"module,omitempty"`    // a module's id; "" for a device
	ManagedBy       string         `json:"managedBy,omitempty"` // a module's managedBy
	Generation      string         `json:"gen"`
	Etag            int64          `json:"etag"` // device etag counter
	Status          string         `json:"status"`
	StatusReason    *string        `json:"statusReason,omitempty"`
	StatusUpdated   time.Time      `json:"statusUpdated"`
	Primary         []byte         `json:"primary"` // raw key bytes (base64 in JSON)
	Secondary       []byte         `json:"secondary"`
	Auth            string         `json:"auth,omitempty"`   // "" (sas), selfSigned or certificateAuthority
	Thumb1          string         `json:"thumb1,omitempty"` // self-signed thumbprints
	Thumb2          string         `json:"thumb2,omitempty"`
	IotEdge         bool           `json:"iotEdge,omitempty"`
	TwinVersion     int64          `json:"twinVersion"`
	TwinEtag        int64          `json:"twinEtag"` // per-twin etag counter
	Tags            map[string]any `json:"tags,omitempty"`
	Desired         map[string]any `json:"desired"`
	Reported        map[string]any `json:"reported"`
	DesiredVersion  int64          `json:"desiredVersion"`
	ReportedVersion int64          `json:"reportedVersion"`
	DesiredMeta     *meta          `json:"desiredMeta"`
	ReportedMeta    *meta          `json:"reportedMeta"`
}

// meta is a $metadata node: when it (or anything below it) last changed and,
// for desired properties, the desired $version that changed it. Nodes are
// copy-on-write like the sections they describe.
type meta struct {
	Updated  time.Time        `json:"u"`
	Version  int64            `json:"v,omitempty"`
	Children map[string]*meta `json:"c,omitempty"`
}

// live is a device's connection state, kept from broker events; not persisted.
type live struct {
	connected    bool
	stateChanged time.Time
	lastActivity time.Time
}
