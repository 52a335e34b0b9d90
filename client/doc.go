// Package client is the library behind the ferry command: it prepares data
// (UnixFS DAGs in CAR files, piece commitments), keeps the client's wallet and
// configuration, talks to the chain (funds, market escrow) and to storage
// providers over libp2p (asks, deal proposals, deal status), and gets the data
// back over the provider's retrieval transports.
//
// The ferry command is a thin front end: every decision worth testing lives
// here.
package client
