// Package clitest helps the tests of ferry and ferryd check what the
// commands print with --json.
//
// A command's output is described by its key paths: "dealUuid" for a key
// of the top-level object, "pieces[].offset" for a key of the objects in
// the array under "pieces", "[].uuid" for a key of the objects of a
// top-level array. An IPLD link ({"/": "bafy…"}) is a value, not an object.
// Golden lists of key paths make a renamed, added or dropped key fail a
// test.
package clitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// camelCase is the style of every key: a lower-case letter, then letters
// and digits.
var camelCase = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// KeyPaths returns the sorted key paths of the JSON values in out (one or
// more, as `--watch` prints them), merged.
func KeyPaths(out []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(out))
	set := map[string]bool{}
	n := 0
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading JSON value %d: %w", n+1, err)
		}
		n++
		collect(set, "", v)
	}
	if n == 0 {
		return nil, errors.New("no JSON in the output")
	}
	paths := make([]string, 0, len(set))
	for p := range set {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, nil
}

func collect(set map[string]bool, prefix string, v any) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["/"]; ok && len(v) == 1 {
			return // a link
		}
		for k, e := range v {
			p := prefix + k
			set[p] = true
			collect(set, p+".", e)
		}
	case []any:
		for _, e := range v {
			collect(set, strings.TrimSuffix(prefix, ".")+"[].", e)
		}
	}
}

// CheckKeys fails t unless out holds JSON whose key paths are exactly
// want, every key camelCase.
func CheckKeys(t testing.TB, command string, out []byte, want ...string) {
	t.Helper()
	got, err := KeyPaths(out)
	if err != nil {
		t.Fatalf("%s --json: %v in %q", command, err, out)
	}
	for _, p := range got {
		for _, k := range strings.Split(p, ".") {
			if k = strings.TrimSuffix(k, "[]"); k != "" && !camelCase.MatchString(k) {
				t.Errorf("%s --json: key %q of %q is not camelCase", command, k, p)
			}
		}
	}
	want = slices.Clone(want)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s --json keys differ:\n got %q\nwant %q\n(missing %q, unexpected %q)\noutput: %s", command, got, want, minus(want, got), minus(got, want), out)
	}
}

// minus is a without the elements of b.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
