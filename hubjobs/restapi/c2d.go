package restapi

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/c2d"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// C2DPath is where a device's cloud-to-device queue is served, under
// fleetsim's own prefix: IoT Hub's service SDKs send these messages over
// AMQP, which fleetsim does not serve. POST sends a message, GET lists
// what waits with the queue's counts, DELETE purges it.
func C2DPath(deviceID string) string { return "/fleetsim/v1/devices/" + esc(deviceID) + "/messages" }

// C2D is what the API needs for cloud-to-device messages. Errors are
// *iothub.Error: DeviceNotFound, MessageTooLarge, ArgumentInvalid,
// DeviceMaximumQueueDepthExceeded.
type C2D interface {
	Send(deviceID string, m c2d.Message) (c2d.Sent, error)
	Status(deviceID string) (c2d.Status, error)
	Purge(deviceID string) (int, error)
}

// C2DMessage is the body of POST /fleetsim/v1/devices/{id}/messages: the
// message's body as text (Data) or bytes (DataBase64, base64 in JSON), its
// system properties, application properties and time to live.
type C2DMessage struct {
	Data            string            `json:"data,omitempty"`
	DataBase64      []byte            `json:"dataBase64,omitempty"`
	MessageID       string            `json:"messageId,omitempty"`
	CorrelationID   string            `json:"correlationId,omitempty"`
	UserID          string            `json:"userId,omitempty"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	Ack             string            `json:"ack,omitempty"`
	Properties      map[string]string `json:"properties,omitempty"`
	// TTLSeconds is the time to live; 0 is the hub's default (one hour).
	TTLSeconds int64 `json:"ttlSeconds,omitempty"`
}

// C2DPurged answers DELETE /fleetsim/v1/devices/{id}/messages, in the shape
// of IoT Hub's purge answer.
type C2DPurged struct {
	DeviceID            string `json:"deviceId"`
	TotalMessagesPurged int    `json:"totalMessagesPurged"`
}

// c2dRoutes registers the cloud-to-device endpoints when Config.C2D is set.
func (s *Server) c2dRoutes() {
	if s.cfg.C2D == nil {
		return
	}
	s.route("POST /fleetsim/v1/devices/{id}/messages", ServiceConnect, s.sendC2D)
	s.route("GET /fleetsim/v1/devices/{id}/messages", ServiceConnect, s.listC2D)
	s.route("DELETE /fleetsim/v1/devices/{id}/messages", ServiceConnect, s.purgeC2D)
}

func (s *Server) sendC2D(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, true)
	if err != nil {
		return err
	}
	var b C2DMessage
	if err := decodeJSON(body, &b, true, "cloud-to-device message"); err != nil {
		return err
	}
	if b.Data != "" && b.DataBase64 != nil {
		return badRequest("give the message body as data or dataBase64, not both")
	}
	if b.TTLSeconds < 0 {
		return badRequest("ttlSeconds %d is negative", b.TTLSeconds)
	}
	m := c2d.Message{
		MessageID: b.MessageID, CorrelationID: b.CorrelationID, UserID: b.UserID,
		ContentType: b.ContentType, ContentEncoding: b.ContentEncoding, Ack: b.Ack,
		Body: b.DataBase64, TTL: time.Duration(min(b.TTLSeconds, int64(iothub.MaxC2DTTL/time.Second))) * time.Second,
	}
	if b.DataBase64 == nil {
		m.Body = []byte(b.Data)
	}
	// A JSON object has no order: the properties go in the topic sorted by name.
	for _, k := range slices.Sorted(maps.Keys(b.Properties)) {
		m.Properties = append(m.Properties, iothub.Property{Key: k, Value: b.Properties[k]})
	}
	sent, err := s.cfg.C2D.Send(r.PathValue("id"), m)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusCreated, sent)
	return nil
}

func (s *Server) listC2D(w http.ResponseWriter, r *http.Request) error {
	st, err := s.cfg.C2D.Status(r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, st)
	return nil
}

func (s *Server) purgeC2D(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	n, err := s.cfg.C2D.Purge(id)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, C2DPurged{DeviceID: id, TotalMessagesPurged: n})
	return nil
}

// SendC2D queues a cloud-to-device message for a device of a fleetsim hub
// (POST C2DPath). A real IoT hub answers 404 or 400: it takes these over AMQP.
func (c *Client) SendC2D(ctx context.Context, deviceID string, m C2DMessage) (c2d.Sent, error) {
	var out c2d.Sent
	b, err := c.doJSON(ctx, http.MethodPost, C2DPath(deviceID), m, nil)
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(b, &out)
}

// C2DStatus reads a device's cloud-to-device queue (GET C2DPath).
func (c *Client) C2DStatus(ctx context.Context, deviceID string) (c2d.Status, error) {
	var out c2d.Status
	b, err := c.doJSON(ctx, http.MethodGet, C2DPath(deviceID), nil, nil)
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(b, &out)
}

// PurgeC2D removes every message waiting for a device (DELETE C2DPath).
func (c *Client) PurgeC2D(ctx context.Context, deviceID string) (C2DPurged, error) {
	var out C2DPurged
	b, err := c.doJSON(ctx, http.MethodDelete, C2DPath(deviceID), nil, nil)
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(b, &out)
}
