package ui

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
)

// dealsPerPage is the length of a page of the Deals table.
const dealsPerPage = 50

// clockOf reads the chain clock for a page; a page still renders when the
// chain cannot be read (epochs are shown without times).
func (s *Server) clockOf(ctx context.Context) (clock, api.Info, error) {
	info, err := s.api.Info(ctx)
	if err != nil {
		return clock{}, info, err
	}
	return clock{Head: info.ChainHead, HeadTime: info.ChainHeadTime, Delay: time.Duration(info.BlockDelayMillis) * time.Millisecond}, info, nil
}

// fail shows an error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, nav string, err error) {
	s.render(w, r, status, "error", &page{Title: "Error", Nav: nav, Problem: err.Error()})
}

// show renders the page that build makes from r with the template name, or,
// when build fails, the error page with the status it says and nav's tab lit.
func (s *Server) show(w http.ResponseWriter, r *http.Request, name, nav string, build func(*http.Request) (*page, int, error)) {
	p, status, err := build(r)
	if err != nil {
		s.fail(w, r, status, nav, err)
		return
	}
	s.render(w, r, http.StatusOK, name, p)
}

// overviewData is the Overview page.
type overviewData struct {
	api.Overview
	// States and Checkpoints are the deal count table: one row per state,
	// one column per checkpoint.
	States      []string
	Checkpoints []string
	Counts      map[string]map[string]int64
	Totals      map[string]int64
	SectorRows  []kv
	IndexRows   []kv
}

type kv struct {
	Key string
	N   int64
}

var (
	allStates      = []string{market.StateActive, market.StateFailed, market.StateComplete, market.StateEnded}
	allCheckpoints = checkpointNames()
)

// checkpointNames are the pipeline's checkpoints in order.
func checkpointNames() []string {
	var out []string
	for c := market.Accepted; c <= market.Complete; c++ {
		out = append(out, c.String())
	}
	return out
}

func (s *Server) overviewPage(ctx context.Context) (*page, error) {
	ov, err := s.api.Overview(ctx)
	if err != nil {
		return nil, err
	}
	d := &overviewData{Overview: ov, States: allStates, Checkpoints: allCheckpoints,
		Counts: map[string]map[string]int64{}, Totals: map[string]int64{}}
	for _, c := range ov.Deals {
		if d.Counts[c.State] == nil {
			d.Counts[c.State] = map[string]int64{}
		}
		d.Counts[c.State][c.Checkpoint.String()] += c.N
		d.Totals[c.State] += c.N
	}
	d.SectorRows, d.IndexRows = sorted(ov.Sectors), sorted(ov.IndexPieces)
	c := clock{Head: ov.Info.ChainHead, HeadTime: ov.Info.ChainHeadTime, Delay: time.Duration(ov.Info.BlockDelayMillis) * time.Millisecond}
	return &page{Title: "Overview", Nav: "overview", Clock: c, Data: d}, nil
}

func sorted(m map[string]int64) []kv {
	out := make([]kv, 0, len(m))
	for k, n := range m {
		out = append(out, kv{k, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	p, err := s.overviewPage(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "overview", err)
		return
	}
	s.render(w, r, http.StatusOK, "overview", p)
}

func (s *Server) overviewLive(w http.ResponseWriter, r *http.Request) {
	p, err := s.overviewPage(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	s.renderPart(w, r, http.StatusOK, "overview", "live", p)
}

// dealsData is the Deals page.
type dealsData struct {
	Filter      market.DealFilter
	Query       url.Values // the filter as the form sent it
	Deals       []market.DealInfo
	Next        string // the query of the next page, "" on the last
	First       string // the query of the first page
	Live        bool   // the first page updates itself
	RowsURL     string
	States      []string
	Checkpoints []string
}

// dealFilter reads the Deals page's query.
func dealFilter(q url.Values) (market.DealFilter, error) {
	f := market.DealFilter{
		State: q.Get("state"), Checkpoint: q.Get("checkpoint"), Client: strings.TrimSpace(q.Get("client")),
		PieceCID: strings.TrimSpace(q.Get("piece")), Search: strings.TrimSpace(q.Get("q")), Limit: dealsPerPage + 1,
	}
	for _, b := range []struct {
		name string
		to   *time.Time
		add  int
	}{{"from", &f.CreatedFrom, 0}, {"to", &f.CreatedTo, 1}} {
		if v := q.Get(b.name); v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				return f, fmt.Errorf("date %q is not YYYY-MM-DD", v)
			}
			*b.to = t.AddDate(0, 0, b.add) // "to" includes its day
		}
	}
	if a := q.Get("after"); a != "" {
		ns, id, ok := strings.Cut(a, "_")
		n, err := strconv.ParseInt(ns, 10, 64)
		if !ok || err != nil {
			return f, fmt.Errorf("page cursor %q is not valid", a)
		}
		f.After = &market.DealCursor{CreatedAt: time.Unix(0, n), UUID: id}
	}
	return f, nil
}

func (s *Server) dealsPage(r *http.Request) (*page, error) {
	q := r.URL.Query()
	f, err := dealFilter(q)
	d := &dealsData{Filter: f, Query: q, States: allStates, Checkpoints: allCheckpoints}
	p := &page{Title: "Deals", Nav: "deals", Data: d}
	if err != nil {
		return p, err
	}
	p.Clock, _, _ = s.clockOf(r.Context())
	deals, err := s.api.DealList(r.Context(), f)
	if err != nil {
		return p, err
	}
	if len(deals) > dealsPerPage {
		last := deals[dealsPerPage-1]
		next := cloneValues(q)
		next.Set("after", fmt.Sprintf("%d_%s", last.CreatedAt.UnixNano(), last.UUID))
		d.Next = next.Encode()
		deals = deals[:dealsPerPage]
	}
	d.Deals = deals
	d.Live = f.After == nil
	first := cloneValues(q)
	first.Del("after")
	d.First = first.Encode()
	d.RowsURL = "/deals/rows?" + cloneValues(q).Encode()
	return p, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		if vs[0] != "" {
			out[k] = slices.Clone(vs)
		}
	}
	return out
}

func (s *Server) deals(w http.ResponseWriter, r *http.Request) {
	p, err := s.dealsPage(r)
	if err != nil {
		p.Problem = err.Error()
		s.render(w, r, http.StatusBadRequest, "deals", p)
		return
	}
	s.render(w, r, http.StatusOK, "deals", p)
}

func (s *Server) dealRows(w http.ResponseWriter, r *http.Request) {
	p, err := s.dealsPage(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.renderPart(w, r, http.StatusOK, "deals", "rows", p)
}

// dealData is the Deal page.
type dealData struct {
	*market.DealDetail
	Timeline []market.CheckpointTime
	Transfer *api.Transfer // while the data arrives
	Actions  []string      // what the operator can do now
	Done     string        // the action just done
}

func (s *Server) dealPage(r *http.Request) (*page, int, error) {
	ctx := r.Context()
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("%q is not a deal UUID", r.PathValue("id"))
	}
	dd, err := s.api.DealShow(ctx, id)
	if err != nil {
		return nil, http.StatusNotFound, err
	}
	p := &page{Title: "Deal " + short(dd.UUID), Nav: "deals"}
	p.Clock, _, _ = s.clockOf(ctx)
	d := &dealData{DealDetail: dd, Timeline: dd.Timeline(), Actions: actionsFor(&dd.DealInfo), Done: r.URL.Query().Get("done")}
	if dd.Checkpoint == market.Accepted && dd.Retry != market.RetryFatal {
		ts, err := s.api.Transfers(ctx)
		if err != nil {
			return nil, http.StatusBadGateway, err
		}
		for i := range ts {
			if ts[i].DealUUID == dd.UUID {
				d.Transfer = &ts[i]
			}
		}
	}
	p.Data = d
	return p, http.StatusOK, nil
}

// actionsFor are the operator actions the market accepts for d now (the
// market checks again when one is sent).
func actionsFor(d *market.DealInfo) []string {
	if d.Retry == market.RetryFatal {
		return nil
	}
	var out []string
	if d.Retry == market.RetryAuto || d.Retry == market.RetryManual {
		out = append(out, "retry")
	}
	if d.Checkpoint == market.Accepted && d.IsOffline {
		out = append(out, "import")
	}
	if d.Checkpoint == market.Accepted || d.Checkpoint == market.Transferred {
		out = append(out, "cancel")
	}
	if d.Checkpoint != market.Complete {
		out = append(out, "fail")
	}
	return out
}

func (s *Server) deal(w http.ResponseWriter, r *http.Request) {
	s.show(w, r, "deal", "deals", s.dealPage)
}

func (s *Server) dealLive(w http.ResponseWriter, r *http.Request) {
	p, status, err := s.dealPage(r)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	s.renderPart(w, r, http.StatusOK, "deal", "live", p)
}

// actionText is what the confirmation of an operator action says: the
// action's verb and what it does.
type actionText struct{ Verb, Explain string }

// actionInfo describes an operator action for its confirmation.
var actionInfo = map[string]actionText{
	"retry":  {"Retry", "The deal resumes its current step now instead of waiting for its back-off or an operator."},
	"fail":   {"Fail", "The deal fails for good: its funds and staging space are released. A deal already published stays on chain; only its local processing stops."},
	"cancel": {"Cancel", "The transfer (or the wait for data or a publish batch) stops and the deal fails. Only deals not yet published can be cancelled."},
	"import": {"Import data", "The file on the daemon's machine becomes the deal's data once its piece CID matches the proposal. The file is read where it is and not deleted."},
}

// confirmData is an action's confirmation page.
type confirmData struct {
	Deal    *market.DealDetail
	Action  string
	Verb    string
	Explain string
	Path    string
}

// actionTarget reads the action and the deal UUID of an action route,
// showing the error page itself when either is unknown or malformed.
func (s *Server) actionTarget(w http.ResponseWriter, r *http.Request) (action string, ai actionText, id uuid.UUID, ok bool) {
	action = r.PathValue("action")
	if ai, ok = actionInfo[action]; !ok {
		s.fail(w, r, http.StatusNotFound, "deals", fmt.Errorf("no action %q", action))
		return "", ai, uuid.UUID{}, false
	}
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "deals", fmt.Errorf("%q is not a deal UUID", r.PathValue("id")))
		return "", ai, uuid.UUID{}, false
	}
	return action, ai, id, true
}

func (s *Server) confirmAction(w http.ResponseWriter, r *http.Request) {
	action, ai, id, ok := s.actionTarget(w, r)
	if !ok {
		return
	}
	dd, err := s.api.DealShow(r.Context(), id)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "deals", err)
		return
	}
	p := &page{Title: ai.Verb + " deal " + short(dd.UUID), Nav: "deals",
		Data: &confirmData{Deal: dd, Action: action, Verb: ai.Verb, Explain: ai.Explain}}
	if !sessionFrom(r.Context()).canAct() {
		p.Problem = "This session's token can read but not act: log in with an admin token to " + strings.ToLower(ai.Verb) + " deals."
	}
	s.render(w, r, http.StatusOK, "confirm", p)
}

// errReadOnly is shown for an action of a session without admin.
var errReadOnly = errors.New("this session's token can read but not act: log in with an admin token (`ferryd auth create-token --perm admin`)")

func (s *Server) dealAction(w http.ResponseWriter, r *http.Request) {
	action, ai, id, ok := s.actionTarget(w, r)
	if !ok {
		return
	}
	if !sessionFrom(r.Context()).canAct() {
		s.fail(w, r, http.StatusForbidden, "deals", errReadOnly)
		return
	}
	ctx := r.Context()
	var err error
	switch action {
	case "retry":
		err = s.api.DealRetry(ctx, id)
	case "fail":
		err = s.api.DealFail(ctx, id)
	case "cancel":
		err = s.api.DealCancel(ctx, id)
	case "import":
		path := strings.TrimSpace(r.PostFormValue("path"))
		if path == "" {
			err = errors.New("import data needs the path of the file on the daemon's machine")
		} else {
			err = s.api.DealImportData(ctx, id, path)
		}
	}
	if err != nil {
		p, status, perr := s.dealPage(r)
		if perr != nil {
			s.fail(w, r, status, "deals", fmt.Errorf("%s: %w", ai.Verb, err))
			return
		}
		p.Problem = fmt.Sprintf("%s failed: %v", ai.Verb, err)
		s.render(w, r, http.StatusConflict, "deal", p)
		return
	}
	http.Redirect(w, r, "/deals/"+id.String()+"?done="+action, http.StatusSeeOther)
}

// pieceData is the Piece page.
type pieceData struct {
	api.PieceDetail
	Check *api.RetrievalCheck // after "check retrieval"
}

func (s *Server) pieceSearch(w http.ResponseWriter, r *http.Request) {
	c := strings.TrimSpace(r.URL.Query().Get("cid"))
	if c == "" {
		s.render(w, r, http.StatusOK, "piece", &page{Title: "Piece", Nav: "piece"})
		return
	}
	http.Redirect(w, r, "/pieces/"+url.PathEscape(c), http.StatusSeeOther)
}

func (s *Server) piecePage(r *http.Request) (*page, int, error) {
	c, err := cid.Decode(r.PathValue("cid"))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("%q is not a CID", r.PathValue("cid"))
	}
	pd, err := s.api.PieceShow(r.Context(), c)
	if err != nil {
		return nil, http.StatusNotFound, err
	}
	p := &page{Title: "Piece " + short(pd.PieceCID), Nav: "piece", Data: &pieceData{PieceDetail: pd}}
	p.Clock, _, _ = s.clockOf(r.Context())
	return p, http.StatusOK, nil
}

func (s *Server) piece(w http.ResponseWriter, r *http.Request) {
	s.show(w, r, "piece", "piece", s.piecePage)
}

func (s *Server) pieceCheck(w http.ResponseWriter, r *http.Request) {
	p, status, err := s.piecePage(r)
	if err != nil {
		s.fail(w, r, status, "piece", err)
		return
	}
	d := p.Data.(*pieceData)
	c, _ := cid.Decode(d.PieceCID)
	rc, err := s.api.PieceCheckRetrieval(r.Context(), c)
	if err != nil {
		p.Problem = "The retrieval check could not run: " + err.Error()
	} else {
		d.Check = &rc
	}
	s.render(w, r, http.StatusOK, "piece", p)
}

// sectorsData is the Sectors page.
type sectorsData struct {
	States  []kv
	State   string
	Sectors []sealing.SectorInfo
}

func (s *Server) sectors(w http.ResponseWriter, r *http.Request) {
	all, err := s.api.SectorsList(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "sectors", err)
		return
	}
	state := r.URL.Query().Get("state")
	counts := map[string]int64{}
	d := &sectorsData{State: state}
	for _, si := range all {
		counts[string(si.State)]++
		if state == "" || string(si.State) == state {
			d.Sectors = append(d.Sectors, si)
		}
	}
	d.States = sorted(counts)
	sort.Slice(d.Sectors, func(i, j int) bool { return d.Sectors[i].Number > d.Sectors[j].Number })
	p := &page{Title: "Sectors", Nav: "sectors", Data: d}
	p.Clock, _, _ = s.clockOf(r.Context())
	s.render(w, r, http.StatusOK, "sectors", p)
}

func (s *Server) ask(w http.ResponseWriter, r *http.Request) {
	s.showAsk(w, r, http.StatusOK, "", r.URL.Query().Get("done") != "")
}

func (s *Server) showAsk(w http.ResponseWriter, r *http.Request, status int, problem string, done bool) {
	a, err := s.api.AskGet(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "ask", err)
		return
	}
	p := &page{Title: "Storage ask", Nav: "ask", Data: a, Problem: problem}
	if done {
		p.Notice = "The new ask is signed and served."
	}
	p.Clock, _, _ = s.clockOf(r.Context())
	s.render(w, r, status, "ask", p)
}

func (s *Server) setAsk(w http.ResponseWriter, r *http.Request) {
	if !sessionFrom(r.Context()).canAct() {
		s.fail(w, r, http.StatusForbidden, "ask", errReadOnly)
		return
	}
	ap, err := askParams(r)
	if err == nil {
		_, err = s.api.AskSet(r.Context(), ap)
	}
	if err != nil {
		s.showAsk(w, r, http.StatusBadRequest, "The ask was not changed: "+err.Error(), false)
		return
	}
	http.Redirect(w, r, "/ask?done=1", http.StatusSeeOther)
}

// askParams reads the ask form: prices in attoFIL/GiB/epoch, sizes in
// bytes (or with a unit: "8MiB"), duration in epochs.
func askParams(r *http.Request) (market.AskParams, error) {
	var ap market.AskParams
	var err error
	if ap.Price, err = big.FromString(strings.TrimSpace(r.PostFormValue("price"))); err != nil {
		return ap, fmt.Errorf("price: %w", err)
	}
	if ap.VerifiedPrice, err = big.FromString(strings.TrimSpace(r.PostFormValue("verifiedPrice"))); err != nil {
		return ap, fmt.Errorf("verified price: %w", err)
	}
	for _, f := range []struct {
		name string
		to   *abi.PaddedPieceSize
	}{{"minPieceSize", &ap.MinPieceSize}, {"maxPieceSize", &ap.MaxPieceSize}} {
		n, err := parseSize(r.PostFormValue(f.name))
		if err != nil {
			return ap, fmt.Errorf("%s: %w", f.name, err)
		}
		*f.to = abi.PaddedPieceSize(n)
	}
	if d := strings.TrimSpace(r.PostFormValue("duration")); d != "" {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 {
			return ap, fmt.Errorf("duration %q is not a number of epochs", d)
		}
		ap.Duration = abi.ChainEpoch(n)
	}
	return ap, nil
}

// parseSize reads a size in bytes, with an optional KiB/MiB/GiB/TiB unit.
func parseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	mult := uint64(1)
	for i, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if strings.HasSuffix(s, u) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u)), 1<<(10*(i+1))
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	if n > math.MaxUint64/mult {
		return 0, fmt.Errorf("%s is too large a size", s)
	}
	return n * mult, nil
}

func (s *Server) settings(w http.ResponseWriter, r *http.Request) {
	cfg, err := s.api.ConfigShow(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "settings", err)
		return
	}
	s.render(w, r, http.StatusOK, "settings", &page{Title: "Settings", Nav: "settings", Data: cfg})
}
