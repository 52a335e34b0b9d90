// Package build holds facts about the build of the running binary.
package build

// Version is Ferry's version, reported by --version and the APIs.
const Version = "0.1.0-dev"
