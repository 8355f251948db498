package broker

import "github.com/mochi-mqtt/server/v2/packets"

// init teaches mochi the MQTT 3.1.1 return code of every CONNECT it refuses
// before the hook sees it. Mochi maps only a few MQTT 5 reason codes to
// 3.1.1 ones and sends the rest as they are (0x82 for an empty password, or
// for protocol name "MQTT" at level 3), which no 3.1.1 client can read.
// 3.1.1 has six return codes; these are the ones IoT Hub's answers come
// from: 0x01 for a protocol version it does not speak, 0x05 for credentials
// it does not accept (IoT Hub answers every failed SAS authentication so,
// including a missing or empty password), 0x02 for a client id a session
// cannot be kept for, and 0x03 when it cannot take the connection. A CONNECT
// that is otherwise malformed has no 3.1.1 code and is refused as not
// authorized. The map is mochi's own, written here once before any server
// runs and only read afterwards.
func init() {
	for v5, v3 := range map[packets.Code]packets.Code{
		packets.ErrProtocolViolationProtocolName:          packets.Err3UnsupportedProtocolVersion,
		packets.ErrProtocolViolationProtocolVersion:       packets.Err3UnsupportedProtocolVersion,
		packets.ErrProtocolViolationFlagNoPassword:        packets.Err3NotAuthorized,
		packets.ErrProtocolViolationPasswordNoFlag:        packets.Err3NotAuthorized,
		packets.ErrProtocolViolationUsernameNoFlag:        packets.Err3NotAuthorized,
		packets.ErrProtocolViolationFlagNoUsername:        packets.Err3NotAuthorized,
		packets.ErrProtocolViolationPasswordTooLong:       packets.Err3NotAuthorized,
		packets.ErrProtocolViolationUsernameTooLong:       packets.Err3NotAuthorized,
		packets.ErrProtocolViolationReservedBit:           packets.Err3NotAuthorized,
		packets.ErrProtocolViolationWillFlagNoPayload:     packets.Err3NotAuthorized,
		packets.ErrProtocolViolationWillFlagSurplusRetain: packets.Err3NotAuthorized,
		packets.ErrProtocolViolationQosOutOfRange:         packets.Err3NotAuthorized,
		packets.ErrQosNotSupported:                        packets.Err3NotAuthorized,
		packets.ErrRetainNotSupported:                     packets.Err3NotAuthorized,
		packets.ErrUnspecifiedError:                       packets.Err3ClientIdentifierNotValid, // a persistent session without a client id
		packets.ErrServerBusy:                             packets.Err3ServerUnavailable,
	} {
		packets.V5CodesToV3[v5] = v3
	}
}
