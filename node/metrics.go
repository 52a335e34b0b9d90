package node

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are read from the database when Prometheus scrapes them (the
// sectors from lotus-miner's SectorsSummary when it seals), so they cost
// nothing between scrapes and can never disagree with `ferryd deal list`
// or `sectors list`.
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

// metricsTimeout bounds the queries of one scrape.
const metricsTimeout = 10 * time.Second

// collector reads a node's figures at each scrape.
type collector struct{ n *Node }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dealsDesc, sectorsDesc, indexDesc, scrapeErrDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
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
	switch {
	case c.n.Sealing != nil:
		counts, err := c.n.Sealing.SectorCounts(ctx)
		for state, k := range counts {
			ch <- prometheus.MustNewConstMetric(sectorsDesc, prometheus.GaugeValue, float64(k), string(state))
		}
		failed("sectors", err)
	case c.n.MinerAPI != nil: // the sectors are lotus-miner's
		counts, err := c.n.MinerAPI.SectorsSummary(ctx)
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{n},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
