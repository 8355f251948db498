package iothub

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Code is one IoT Hub error code: its name (the iothub-errorcode header), its
// number, and the HTTP status it travels with (docs/iothub.md §2.3).
type Code struct {
	Name   string
	Number int
}

// Status is the HTTP status of the code: its number's first three digits.
func (c Code) Status() int { return c.Number / 1000 }

// The error codes fleetsim returns. This table is the one place where codes
// and HTTP statuses are tied together.
var (
	CodeGenericBadRequest                   = Code{"GenericBadRequest", 400000}
	CodeInvalidOperation                    = Code{"InvalidOperation", 400003}
	CodeArgumentInvalid                     = Code{"ArgumentInvalid", 400004}
	CodeArgumentNull                        = Code{"ArgumentNull", 400005}
	CodeIotHubFormatError                   = Code{"IotHubFormatError", 400006}
	CodeDeviceDefinedMultipleTimes          = Code{"DeviceDefinedMultipleTimes", 400011}
	CodeDeserializationError                = Code{"DeserializationError", 400012}
	CodeBulkRegistryOperationFailure        = Code{"BulkRegistryOperationFailure", 400013}
	CodeIotHubUnauthorizedAccess            = Code{"IotHubUnauthorizedAccess", 401002}
	CodeIotHubQuotaExceeded                 = Code{"IotHubQuotaExceeded", 403002}
	CodeDeviceMaximumQueueDepthExceeded     = Code{"DeviceMaximumQueueDepthExceeded", 403004}
	CodeDeviceNotFound                      = Code{"DeviceNotFound", 404001}
	CodeJobNotFound                         = Code{"JobNotFound", 404002}
	CodeDeviceNotOnline                     = Code{"DeviceNotOnline", 404103}
	CodeModuleNotFound                      = Code{"ModuleNotFound", 404010}
	CodeDeviceAlreadyExists                 = Code{"DeviceAlreadyExists", 409001}
	CodeJobAlreadyExists                    = Code{"JobAlreadyExists", 409002}
	CodeModuleAlreadyExistsOnDevice         = Code{"ModuleAlreadyExistsOnDevice", 409301}
	CodePreconditionFailed                  = Code{"PreconditionFailed", 412001}
	CodeMessageTooLarge                     = Code{"MessageTooLarge", 413001}
	CodeTooManyDevices                      = Code{"TooManyDevices", 413002}
	CodeThrottlingException                 = Code{"ThrottlingException", 429001}
	CodeThrottlingMaxActiveJobCountExceeded = Code{"ThrottlingMaxActiveJobCountExceeded", 429004}
	CodeServerError                         = Code{"ServerError", 500001}
	CodeJobCancelled                        = Code{"JobCancelled", 500002}
	CodeServiceUnavailable                  = Code{"ServiceUnavailable", 503001}
	CodeGatewayTimeout                      = Code{"GatewayTimeout", 504101}
)

// Error is an IoT Hub error: a code, a message, and optional info. It is the
// error type that crosses the REST boundary and the MQTT twin responses.
type Error struct {
	Code    Code
	Message string
	Info    map[string]any
	// Err is the cause, if any; it is not shown to clients.
	Err error
}

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%d): %s: %v", e.Code.Name, e.Code.Number, e.Message, e.Err)
	}
	return fmt.Sprintf("%s (%d): %s", e.Code.Name, e.Code.Number, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same code, so errors.Is(err,
// &iothub.Error{Code: iothub.CodeDeviceNotFound}) works.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code
	}
	return false
}

// HTTPStatus is the HTTP status the error travels with.
func (e *Error) HTTPStatus() int {
	s := e.Code.Status()
	if http.StatusText(s) == "" {
		return http.StatusInternalServerError
	}
	return s
}

// AsError returns err as an *Error, mapping anything else to ServerError.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeServerError, Message: "Internal server error", Err: err}
}

// HTTPBody returns the REST error body. DeviceNotFound and the throttling and
// auth errors use the legacy "ErrorCode:Name;message" text, which the Node SDK
// parses into a typed error; everything else embeds the newer JSON form with
// the numeric code, which the C# SDK reads (docs/iothub.md §2.3). Both are shapes
// the real service sends.
func (e *Error) HTTPBody(trackingID string, now time.Time) []byte {
	var msg string
	switch e.Code {
	case CodeDeviceNotFound, CodeIotHubUnauthorizedAccess, CodeThrottlingMaxActiveJobCountExceeded,
		CodeGenericBadRequest, CodeDeviceAlreadyExists, CodePreconditionFailed, CodeJobNotFound, CodeJobAlreadyExists:
		msg = "ErrorCode:" + e.Code.Name + ";" + e.Message
	default:
		inner := map[string]any{
			"errorCode":    e.Code.Number,
			"trackingId":   trackingID,
			"message":      e.Message,
			"info":         e.infoOrEmpty(),
			"timestampUtc": now.UTC().Format(time.RFC3339Nano),
		}
		b, _ := json.Marshal(inner)
		msg = string(b)
	}
	body, _ := json.Marshal(map[string]string{
		"Message":          msg,
		"ExceptionMessage": "Tracking ID:" + trackingID + "-TimeStamp:" + now.UTC().Format("01/02/2006 15:04:05"),
	})
	return body
}

// MQTTBody returns the JSON body of an error answer on a twin response topic:
// it has an errorCode member, which is what the Node SDK looks for (§3.3).
func (e *Error) MQTTBody(trackingID string, now time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"errorCode":    e.Code.Number,
		"trackingId":   trackingID,
		"message":      e.Message,
		"timestampUtc": now.UTC().Format(time.RFC3339Nano),
	})
	return b
}

func (e *Error) infoOrEmpty() map[string]any {
	if e.Info == nil {
		return map[string]any{}
	}
	return e.Info
}
