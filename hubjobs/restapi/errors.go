package restapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// toHubError turns any error a handler meets into the *iothub.Error it is
// answered with. *iothub.Error passes through; query errors are bad
// requests; an oversized body is 413; anything else is a 500 ServerError.
func toHubError(err error) *iothub.Error {
	var he *iothub.Error
	if errors.As(err, &he) {
		return he
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return iothub.Errorf(iothub.CodeMessageTooLarge, "the request body is larger than %d bytes", tooBig.Limit)
	case errors.Is(err, query.ErrInvalidQuery):
		return &iothub.Error{Code: iothub.CodeArgumentInvalid, Message: err.Error(), Err: err}
	}
	return &iothub.Error{Code: iothub.CodeServerError, Message: "Internal server error", Err: err}
}

// writeError is the one place errors are written (docs/iothub.md §2.3): the
// status and body come from the *iothub.Error (its HTTPStatus and
// HTTPBody), with the iothub-errorcode header beside them. Server errors are
// logged here, once; a request whose client has gone is not answered.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		s.log.Debug().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("REST request abandoned by the client")
		return
	}
	he := toHubError(err)
	rid, _ := r.Context().Value(requestKey{}).(string)
	status := he.HTTPStatus()
	ev := s.log.Debug()
	if status >= 500 {
		ev = s.log.Error()
	}
	ev.Err(err).Str("requestId", rid).Str("method", r.Method).Str("path", r.URL.Path).
		Int("status", status).Str("code", he.Code.Name).Msg("REST error")
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("iothub-errorcode", he.Code.Name)
	h.Del("x-ms-continuation")
	if bodyUnread(r) {
		// Answer without waiting for the body and close the connection:
		// net/http would otherwise read the body first, before the answer
		// and again when the request ends.
		h.Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
	w.WriteHeader(status)
	_, _ = w.Write(he.HTTPBody(trackingID(rid), time.Now()))
}

// trackingID derives the error body's tracking id from the request id, in
// the real hub's "{32 hex}-G:0" shape.
func trackingID(rid string) string {
	return strings.ReplaceAll(rid, "-", "") + "-G:0"
}

// writeJSON answers with status and v as JSON.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// badRequest is a 400 ArgumentInvalid with a message that names the problem.
func badRequest(format string, args ...any) *iothub.Error {
	return iothub.Errorf(iothub.CodeArgumentInvalid, format, args...)
}

// readBody reads the whole (capped) body. A missing body is an error when
// required.
func readBody(r *http.Request, required bool) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, toHubError(err)
		}
		return nil, &iothub.Error{Code: iothub.CodeGenericBadRequest, Message: "could not read the request body", Err: err}
	}
	if required && len(bytes.TrimSpace(b)) == 0 {
		return nil, badRequest("the request body is empty; a JSON body is required")
	}
	return b, nil
}

// decodeJSON decodes exactly one JSON value from body into v. With strict,
// unknown object members are errors; without, they are ignored (the C# SDK
// sends whole Twin and Device objects). Errors are 400s naming the problem
// and, where known, the field and byte offset.
func decodeJSON(body []byte, v any, strict bool, what string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed %s: %s", what, describeJSONError(err, body))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed %s: unexpected data after the JSON value at offset %d", what, dec.InputOffset())
	}
	return nil
}

// describeJSONError words a decoding error for a client.
func describeJSONError(err error, body []byte) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at offset %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return fmt.Sprintf("the body must be %s, got %s", jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		return fmt.Sprintf("field %q must be %s, got %s", field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.EOF):
		return "the body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("the JSON ends early after %d bytes", len(body))
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f
	}
	return strings.TrimPrefix(msg, "json: ")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "a " + goKind
}

// requireObject checks that body is one JSON object, for bodies passed on as
// raw bytes (twin patches).
func requireObject(body []byte, what string) error {
	var m map[string]json.RawMessage
	if err := decodeJSON(body, &m, false, what); err != nil {
		return err
	}
	if m == nil {
		return badRequest("malformed %s: expected a JSON object, got null", what)
	}
	return nil
}
