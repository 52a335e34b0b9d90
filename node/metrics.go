package node

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are counted in the database (from indexes that make the counts
// cheap) every metricsRefresh by one goroutine, and a scrape serves the
// latest counts: a scrape takes the same time at a million deals as at
// ten, however many scrapers there are, and the figures are at most
// metricsRefresh old.
var (
	dealsDesc = prometheus.NewDesc("ferry_deals", "Storage deals by state (active, failed, complete, ended) and checkpoint.",
		[]string{"state", "checkpoint"}, nil)
	sectorsDesc = prometheus.NewDesc("ferry_sectors", "Sectors by sealing state.",
		[]string{"state"}, nil)
	indexDesc = prometheus.NewDesc("ferry_index_pieces", "Pieces of the piece index by state (indexing, indexed, failed).",
		[]string{"state"}, nil)
	scrapeErrDesc = prometheus.NewDesc("ferry_metrics_errors", "1 when a part's figures could not be read at this scrape.",
		[]string{"part"}, nil)
)

// metricsTimeout bounds the queries of one count.
const metricsTimeout = 10 * time.Second

// metricsRefresh is how often the counts are read.
const metricsRefresh = 10 * time.Second

// collector serves a node's latest counts.
type collector struct {
	n *Node

	mu     sync.Mutex
	latest []prometheus.Metric // nil until the first count
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dealsDesc, sectorsDesc, indexDesc, scrapeErrDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it sends the latest counts,
// counting first if there are none yet.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	latest := c.latest
	c.mu.Unlock()
	if latest == nil {
		latest = c.refresh(context.Background())
	}
	for _, m := range latest {
		ch <- m
	}
}

// run counts at once, then every metricsRefresh until ctx ends.
func (c *collector) run(ctx context.Context) {
	c.refresh(ctx)
	t := time.NewTicker(metricsRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.refresh(ctx)
		}
	}
}

// refresh counts and keeps the figures as the latest.
func (c *collector) refresh(ctx context.Context) []prometheus.Metric {
	var out []prometheus.Metric
	mc := make(chan prometheus.Metric)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range mc {
			out = append(out, m)
		}
	}()
	c.count(ctx, mc)
	close(mc)
	<-done
	c.mu.Lock()
	c.latest = out
	c.mu.Unlock()
	return out
}

// count reads the figures from the database.
func (c *collector) count(ctx context.Context, ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	failed := func(part string, err error) {
		v := 0.0
		if err != nil {
			v = 1
			c.n.logf("metrics: reading %s: %v", part, err)
		}
		ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, v, part)
	}
	if c.n.Provider != nil {
		counts, err := c.n.Provider.DealCounts(ctx)
		for _, dc := range counts {
			ch <- prometheus.MustNewConstMetric(dealsDesc, prometheus.GaugeValue, float64(dc.N), dc.State, dc.Checkpoint.String())
		}
		failed("deals", err)
	}
	if c.n.Sealing != nil {
		counts, err := c.n.Sealing.SectorCounts(ctx)
		for state, k := range counts {
			ch <- prometheus.MustNewConstMetric(sectorsDesc, prometheus.GaugeValue, float64(k), string(state))
		}
		failed("sectors", err)
	}
	if c.n.Index != nil {
		counts, err := c.n.Index.PieceCounts(ctx)
		for state, k := range counts {
			ch <- prometheus.MustNewConstMetric(indexDesc, prometheus.GaugeValue, float64(k), state)
		}
		failed("index", err)
	}
}

// metricsHandler serves the node's metrics, with the Go runtime's and the
// process's, in Prometheus' text format.
func (n *Node) metricsHandler() http.Handler {
	c := &collector{n: n}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		c.run(n.runCtx)
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
