package ui

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// FuzzDealFilter reads the Deals page's query string: any text gives a
// filter or an error, never a panic, and a cursor read back is the one
// written.
func FuzzDealFilter(f *testing.F) {
	f.Add("state=active&checkpoint=Accepted&from=2026-01-01&to=2026-01-31")
	f.Add("after=1790000000000000000_0b5f8a4e-7a4c-4f5e-9d7e-1c2b3a4d5e6f")
	f.Add("after=_&from=2026-13-01")
	f.Add("q=%00&client=f01000&piece=baga")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl, err := dealFilter(q)
		if err != nil {
			return
		}
		if fl.Limit != dealsPerPage+1 {
			t.Fatalf("limit %d", fl.Limit)
		}
		if fl.After != nil {
			ns, id, _ := strings.Cut(q.Get("after"), "_")
			n, err := strconv.ParseInt(ns, 10, 64)
			if err != nil || fl.After.CreatedAt.UnixNano() != n || fl.After.UUID != id {
				t.Fatalf("cursor %q read as %d_%s", q.Get("after"), fl.After.CreatedAt.UnixNano(), fl.After.UUID)
			}
		}
		if !fl.CreatedFrom.IsZero() && fl.CreatedFrom.Format("2006-01-02") != q.Get("from") {
			t.Fatalf("from %q read as %s", q.Get("from"), fl.CreatedFrom)
		}
	})
}

// FuzzParseSize reads the ask form's sizes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"256", "8MiB", " 32 GiB ", "1TiB", "KiB", "-1", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		// The size read is the number written times its unit, exactly.
		digits := strings.TrimSpace(strings.TrimRight(strings.TrimSpace(s), "KMGTiB"))
		k, perr := strconv.ParseUint(digits, 10, 64)
		if perr != nil || (k != 0 && n%k != 0) || (k == 0 && n != 0) || (k != 0 && n/k > 1<<40) {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
	})
}
