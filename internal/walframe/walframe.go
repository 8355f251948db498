// Package walframe is the frame format of fleetsim's write-ahead logs: a log
// is a sequence of frames, each one batch the store acknowledged once the
// frame was written and fsynced.
//
//	frame = len uint32 LE | crc32c(body) uint32 LE | body (len bytes)
//
// A frame that is cut short or fails its checksum ends the log: it is what
// a crash in the middle of an append leaves, and its batch was never
// acknowledged. What a body holds is the store's business.
package walframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// header is the length of a frame's header.
const header = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is a frame whose checksum is right but whose body the store
// cannot read: not a torn write but a bug or a damaged disk.
var ErrCorrupt = errors.New("corrupt write-ahead log")

// Append appends one frame to b whose body is what appendBody appends to
// the slice it is given.
func Append(b []byte, appendBody func(b []byte) []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, header)...)
	b = appendBody(b)
	body := b[start+header:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

// Read calls fn with the body of each whole, intact frame of log, in order,
// and returns the length of the intact prefix: what follows it is a torn
// tail to cut off. An error from fn stops Read and is returned wrapped in
// ErrCorrupt, with the frame's offset. Bodies point into log.
func Read(log []byte, fn func(body []byte) error) (int, error) {
	off := 0
	for len(log)-off >= header {
		n := int(binary.LittleEndian.Uint32(log[off:]))
		sum := binary.LittleEndian.Uint32(log[off+4:])
		if n > len(log)-off-header {
			break // torn: the crash came before the whole frame was written
		}
		body := log[off+header : off+header+n]
		if crc32.Checksum(body, castagnoli) != sum {
			break // torn: written in part
		}
		if err := fn(body); err != nil {
			return off, fmt.Errorf("%w at offset %d: %v", ErrCorrupt, off, err)
		}
		off += header + n
	}
	return off, nil
}

// AppendField appends a length-prefixed field (uvarint length, bytes) to a
// body: what bodies are made of.
func AppendField[T ~string | ~[]byte](b []byte, field T) []byte {
	b = binary.AppendUvarint(b, uint64(len(field)))
	return append(b, field...)
}

// Field reads a field written by AppendField from the front of body.
func Field(body []byte) (field, rest []byte, err error) {
	n, k := binary.Uvarint(body)
	if k <= 0 || n > uint64(len(body)-k) {
		return nil, nil, errors.New("bad field length")
	}
	return body[k : k+int(n)], body[k+int(n):], nil
}
