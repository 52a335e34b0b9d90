//go:build race

package minerapi

const raceEnabled = true
