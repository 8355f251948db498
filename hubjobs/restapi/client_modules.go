package restapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// modulePath is /{kind}/{id}/modules/{mid} (kind "devices" or "twins").
func modulePath(kind, deviceID, moduleID string) string {
	return "/" + kind + "/" + esc(deviceID) + "/modules/" + esc(moduleID)
}

// PutModule sends a module identity (PUT /devices/{id}/modules/{mid}):
// created when etag is "", else updated under If-Match etag ("*" for any).
func (c *Client) PutModule(ctx context.Context, module any, deviceID, moduleID, etag string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodPut, modulePath("devices", deviceID, moduleID), module, ifMatch(etag))
}

// CreateModule registers a module with keys the hub generates.
func (c *Client) CreateModule(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error) {
	return c.PutModule(ctx, map[string]any{
		"deviceId":       deviceID,
		"moduleId":       moduleID,
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]string{"primaryKey": "", "secondaryKey": ""}},
	}, deviceID, moduleID, "")
}

// GetModule returns a module identity.
func (c *Client) GetModule(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, modulePath("devices", deviceID, moduleID), nil, nil)
}

// ListModules returns a JSON array of a device's module identities.
func (c *Client) ListModules(ctx context.Context, deviceID string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, "/devices/"+esc(deviceID)+"/modules", nil, nil)
}

// DeleteModule deletes a module under If-Match etag ("" means "*").
func (c *Client) DeleteModule(ctx context.Context, deviceID, moduleID, etag string) error {
	if etag == "" {
		etag = "*"
	}
	_, err := c.Do(ctx, http.MethodDelete, modulePath("devices", deviceID, moduleID), nil, ifMatch(etag))
	return err
}

// GetModuleTwin returns a module twin.
func (c *Client) GetModuleTwin(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, modulePath("twins", deviceID, moduleID), nil, nil)
}

// UpdateModuleTwin patches a module twin under If-Match etag ("" or "*"
// for any) and returns the updated twin.
func (c *Client) UpdateModuleTwin(ctx context.Context, deviceID, moduleID string, patch json.RawMessage, etag string) (json.RawMessage, error) {
	if etag == "" {
		etag = "*"
	}
	return c.doJSON(ctx, http.MethodPatch, modulePath("twins", deviceID, moduleID), patch, ifMatch(etag))
}

// InvokeModuleMethod calls a module's direct method and returns the
// module's status and payload; a hub error is an error.
func (c *Client) InvokeModuleMethod(ctx context.Context, deviceID, moduleID string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	if req.Payload == nil {
		req.Payload = json.RawMessage("null")
	}
	b, err := c.doJSON(ctx, http.MethodPost, modulePath("twins", deviceID, moduleID)+"/methods", req, nil)
	if err != nil {
		return iothub.MethodResult{}, err
	}
	var res iothub.MethodResult
	if err := json.Unmarshal(b, &res); err != nil {
		return iothub.MethodResult{}, fmt.Errorf("invoke %s on %s/%s: unexpected answer: %w", req.MethodName, deviceID, moduleID, err)
	}
	return res, nil
}
