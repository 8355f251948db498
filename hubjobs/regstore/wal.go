package regstore

import (
	"fmt"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/walframe"
)

// The write-ahead log holds the batches applied since the last checkpoint,
// one walframe frame per batch, whose body is:
//
//	body  = entry...
//	entry = op byte (1 put, 2 delete) | uvarint id length | id | [uvarint data length | data]   (data for puts)

const (
	opPut    = 1
	opDelete = 2
)

// appendFrame appends batch as one frame to b.
func appendFrame(b []byte, batch []registry.Write) []byte {
	return walframe.Append(b, func(b []byte) []byte {
		for _, w := range batch {
			if w.Data == nil {
				b = walframe.AppendField(append(b, opDelete), w.ID)
				continue
			}
			b = walframe.AppendField(append(b, opPut), w.ID)
			b = walframe.AppendField(b, w.Data)
		}
		return b
	})
}

// readFrames calls fn for each entry of each whole, intact frame in log, in
// order, and returns the length of the intact prefix. Data passed to fn
// points into log.
func readFrames(log []byte, fn func(id string, data []byte)) (int, error) {
	return walframe.Read(log, func(body []byte) error { return readEntries(body, fn) })
}

func readEntries(body []byte, fn func(id string, data []byte)) error {
	for len(body) > 0 {
		op := body[0]
		body = body[1:]
		id, rest, err := walframe.Field(body)
		if err != nil {
			return err
		}
		body = rest
		switch op {
		case opDelete:
			fn(string(id), nil)
		case opPut:
			data, rest, err := walframe.Field(body)
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
