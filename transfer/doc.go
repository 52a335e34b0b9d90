// Package transfer downloads deal data over HTTP for the provider.
//
// A Downloader fetches one file per Request into a file on disk. The partial
// file is the only state: a Download that fails, is cancelled or dies with the
// process resumes from the bytes already on disk with a Range request. Every
// byte of the file, from offset zero and in order, is also written to a tee
// writer (the part already on disk is replayed from the file first), so the
// caller can compute the piece commitment in the same pass and compare it
// once the download is complete.
//
// What the server sends is checked against the declared size before it is
// written, the file never grows beyond it, and a Download succeeds only when
// a response of that call ended exactly there: a complete file on disk is
// confirmed with a request for its last byte, so a server that sends more
// than declared fails every Download, not just the first.
//
// Failures are permanent or transient (IsPermanent): a size mismatch, an
// invalid URL, a refused address, content that changed under a resumed
// download or an HTTP 4xx other than 408 and 429 can never succeed; server
// errors, resets, stalls and a slow server may. A Download retries transient
// failures with bounded exponential backoff, at most Config.MaxRetries times
// in all, and ends with ErrTooSlow when its server sends less than
// Config.MinRate over a Config.RateWindow; attempts that receive nothing for
// Config.StallTimeout are aborted. Progress is reported at least every
// 64 KiB or every second, whichever comes first.
//
// Slots are limited overall, per host:port and per client (Request.Client,
// the deal client's peer ID or wallet), and a freed slot goes to the client
// with the fewest downloads running, so one client's many or stalling
// downloads cannot keep the others waiting.
//
// By default the Downloader refuses to connect to loopback, private,
// link-local and other non-public addresses, checked at dial time on the
// address actually dialled. CheckURL makes the same judgement before a
// deal is accepted, resolving names and reading numeric hosts in every form
// URL parsers accept (127.1, 2130706433, 0x7f000001, 0177.0.0.1, IPv6 and
// IPv4-mapped literals); the dialer reads numeric hosts the same way.
// Errors and logs show URLs through Redact, without user info or query
// string, since pre-signed URLs carry their tokens there.
package transfer
