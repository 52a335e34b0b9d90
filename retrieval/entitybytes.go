package retrieval

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// entityBytes is a parsed entity-bytes=from:to request parameter of the
// trustless gateway: byte offsets into the terminal entity, both
// inclusive; a negative offset counts from the entity's end and toEnd
// stands for "*", the last byte.
type entityBytes struct {
	from, to int64
	toEnd    bool
}

// parseEntityBytes parses the value of entity-bytes: "from:to" where from
// is an integer (negative from the end) and to an integer or "*".
func parseEntityBytes(s string) (entityBytes, error) {
	fs, ts, ok := strings.Cut(s, ":")
	if !ok {
		return entityBytes{}, fmt.Errorf("entity-bytes %q is not from:to", s)
	}
	var r entityBytes
	var err error
	if r.from, err = parseOffset(fs); err != nil {
		return entityBytes{}, fmt.Errorf("entity-bytes %q: from: %w", s, err)
	}
	if ts == "*" {
		r.toEnd = true
		return r, nil
	}
	if r.to, err = parseOffset(ts); err != nil {
		return entityBytes{}, fmt.Errorf("entity-bytes %q: to: %w", s, err)
	}
	// Offsets counted from the same end must not be in reverse order;
	// mixed ones depend on the entity's size.
	if (r.from >= 0) == (r.to >= 0) && r.from > r.to {
		return entityBytes{}, fmt.Errorf("entity-bytes %q: from is after to", s)
	}
	return r, nil
}

// parseOffset parses a decimal integer with an optional minus sign.
func parseOffset(s string) (int64, error) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" {
		return 0, errors.New("missing number")
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not an integer", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return n, nil
}

// String formats r as the parameter value it was parsed from (normalized).
func (r entityBytes) String() string {
	if r.toEnd {
		return fmt.Sprintf("%d:*", r.from)
	}
	return fmt.Sprintf("%d:%d", r.from, r.to)
}

// resolve turns r into absolute inclusive offsets [start, end] of an entity
// of size bytes, clamped to the entity. empty reports a range with no byte
// of the entity in it: one that starts past the end (outside is then
// true too) or ends before it starts.
func (r entityBytes) resolve(size uint64) (start, end uint64, empty, outside bool) {
	sz := int64(size)
	if sz < 0 { // beyond any real entity: treat offsets as from the start
		sz = 1<<63 - 1
	}
	from := r.from
	if from < 0 {
		from = max(sz+from, 0)
	}
	if from >= sz {
		return 0, 0, true, true
	}
	to := sz - 1
	if !r.toEnd {
		to = r.to
		if to < 0 {
			to = sz + to
		}
		to = min(to, sz-1)
	}
	if to < from {
		return 0, 0, true, false
	}
	return uint64(from), uint64(to), false, false
}
