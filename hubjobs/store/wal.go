package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
)

// The write-ahead log holds the batches applied since the last checkpoint,
// one frame per batch:
//
//	frame = len uint32 LE | crc32c(body) uint32 LE | body (len bytes)
//	body  = entry...
//	entry = op byte (1 put, 2 delete) | uvarint id length | id | [uvarint data length | data]   (data for puts)
//
// A batch is durable once its frame is written and fsynced. A frame that is
// cut short or fails its checksum ends the log: it is what a crash in the
// middle of an append leaves, and its batch was never acknowledged.

const (
	opPut    = 1
	opDelete = 2
	frameHdr = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt is a frame whose checksum is right but whose body cannot be
// read: not a torn write but a bug or a damaged disk.
var errCorrupt = errors.New("corrupt write-ahead log")

// appendFrame appends batch as one frame to b.
func appendFrame(b []byte, batch []registry.Write) []byte {
	start := len(b)
	b = append(b, make([]byte, frameHdr)...)
	for _, w := range batch {
		if w.Data == nil {
			b = append(b, opDelete)
			b = binary.AppendUvarint(b, uint64(len(w.ID)))
			b = append(b, w.ID...)
			continue
		}
		b = append(b, opPut)
		b = binary.AppendUvarint(b, uint64(len(w.ID)))
		b = append(b, w.ID...)
		b = binary.AppendUvarint(b, uint64(len(w.Data)))
		b = append(b, w.Data...)
	}
	body := b[start+frameHdr:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

// readFrames calls fn for each entry of each whole, intact frame in log, in
// order, and returns the length of the intact prefix. Data passed to fn
// points into log.
func readFrames(log []byte, fn func(id string, data []byte)) (int, error) {
	off := 0
	for len(log)-off >= frameHdr {
		n := int(binary.LittleEndian.Uint32(log[off:]))
		sum := binary.LittleEndian.Uint32(log[off+4:])
		if n > len(log)-off-frameHdr {
			break // torn: the crash came before the whole frame was written
		}
		body := log[off+frameHdr : off+frameHdr+n]
		if crc32.Checksum(body, castagnoli) != sum {
			break // torn: written in part
		}
		if err := readEntries(body, fn); err != nil {
			return off, fmt.Errorf("%w at offset %d: %v", errCorrupt, off, err)
		}
		off += frameHdr + n
	}
	return off, nil
}

func readEntries(body []byte, fn func(id string, data []byte)) error {
	for len(body) > 0 {
		op := body[0]
		body = body[1:]
		id, rest, err := chunk(body)
		if err != nil {
			return err
		}
		body = rest
		switch op {
		case opDelete:
			fn(string(id), nil)
		case opPut:
			data, rest, err := chunk(body)
			if err != nil {
				return err
			}
			body = rest
			fn(string(id), data[:len(data):len(data)])
		default:
			return fmt.Errorf("unknown op %d", op)
		}
	}
	return nil
}

// chunk reads a uvarint length and that many bytes.
func chunk(b []byte) (c, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, errors.New("bad length")
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}
