package testserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
)

// eventLines decodes the JSON lines that a server appends to path, from
// byte offset from on, as T, and returns them with the offset where they
// end. A line still being written is left for the next call; a line that
// does not decode is skipped. The servers write each line before they
// send the response it records, so a request whose response arrived is
// included.
func eventLines[T any](path string, from int64) ([]T, int64) {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < from {
		return nil, from
	}
	data = data[from:]
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e T
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, from + int64(len(data))
}
