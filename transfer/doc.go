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
// The Downloader checks the server's size against the declared size before
// writing, never writes more than the declared size, retries transient
// failures with bounded exponential backoff, aborts attempts that stall,
// limits how many downloads run at once overall and per host, and by default
// refuses to connect to loopback, private and link-local addresses (checked
// at dial time, after DNS resolution).
package transfer
