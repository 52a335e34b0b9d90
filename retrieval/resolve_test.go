package retrieval

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
)

func TestResolvePath(t *testing.T) {
	f := newFixture(t)
	tr := f.tree
	ctx := context.Background()
	deep := ""
	for name := range tr.entries {
		if p := tr.shardPath(t, name); len(p) > 1 && (deep == "" || name < deep) {
			deep = name
		}
	}
	for _, c := range []struct {
		path string
		want cid.Cid
	}{
		{"", tr.root},
		{"/", tr.root},
		{"dir/sub/file.bin", tr.file},
		{"/dir/sub/", tr.sub},
		{"raw.txt", tr.raw},
		{"hamt/" + deep, tr.entries[deep]},
		{"hamt/nested dir/x.bin", tr.xbin},
	} {
		got, err := ResolvePath(ctx, f.srv.URL, tr.root, c.path)
		if err != nil {
			t.Fatalf("%q: %v", c.path, err)
		}
		if !got.Equals(c.want) {
			t.Fatalf("%q resolved to %s, want %s", c.path, got, c.want)
		}
	}
	// The server's refusals come through; they are not verification errors.
	for _, p := range []string{"dir/missing", "raw.txt/x", "dir/../raw.txt"} {
		_, err := ResolvePath(ctx, f.srv.URL, tr.root, p)
		if err == nil || errors.Is(err, ErrVerification) {
			t.Fatalf("%q: %v", p, err)
		}
	}

	// A server that answers with the blocks of another path cannot make
	// the client accept it: the walk over what was sent fails.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = strings.Replace(r.URL.Path, "/dir/sub/file.bin", "/raw.txt", 1)
		r.URL.RawPath = ""
		f.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer liar.Close()
	if _, err := ResolvePath(ctx, liar.URL, tr.root, "dir/sub/file.bin"); !errors.Is(err, ErrVerification) {
		t.Fatalf("a server sending another path's blocks: %v", err)
	}
}
