package ui

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/ferry-fil/ferry/market"
)

// barChart draws the ingest history as an SVG bar chart of fixed size (so
// live updates never move the page), bars coloured by CSS, with the
// largest value and the first and last periods labelled.
func barChart(buckets []market.IngestBucket, hourly bool) template.HTML {
	const w, h, top, bottom = 600.0, 150.0, 16.0, 20.0
	var max uint64
	for _, b := range buckets {
		if b.Bytes > max {
			max = b.Bytes
		}
	}
	var sb strings.Builder
	kind := "day"
	if hourly {
		kind = "hour"
	}
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="bytes ingested per %s, largest %s">`, w, h, kind, fmtBytes(max))
	fmt.Fprintf(&sb, `<line class="axis" x1="0" y1="%.1f" x2="%.0f" y2="%.1f"/>`, h-bottom, w, h-bottom)
	n := len(buckets)
	if n > 0 {
		slot := w / float64(n)
		for i, b := range buckets {
			bh := 0.0
			if max > 0 {
				bh = float64(b.Bytes) / float64(max) * (h - top - bottom)
			}
			if b.Bytes > 0 && bh < 1 {
				bh = 1
			}
			fmt.Fprintf(&sb, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %s in %d deal(s)</title></rect>`,
				float64(i)*slot+slot*0.1, h-bottom-bh, slot*0.8, bh, bucketLabel(b.Start, hourly), fmtBytes(b.Bytes), b.Deals)
		}
		fmt.Fprintf(&sb, `<text class="label" x="0" y="%.0f">%s</text>`, h-4, bucketLabel(buckets[0].Start, hourly))
		fmt.Fprintf(&sb, `<text class="label" x="%.0f" y="%.0f" text-anchor="end">%s</text>`, w, h-4, bucketLabel(buckets[n-1].Start, hourly))
	}
	fmt.Fprintf(&sb, `<text class="label" x="0" y="11">max %s</text></svg>`, fmtBytes(max))
	return template.HTML(sb.String())
}

// bucketLabel names a period (UTC: the chart is drawn on the server).
func bucketLabel(t time.Time, hourly bool) string {
	if hourly {
		return t.UTC().Format("Jan 2 15:04 UTC")
	}
	return t.UTC().Format("Jan 2")
}
