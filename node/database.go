package node

import "os"

// EnvDatabaseURL names the environment variable that, when set, overrides
// Database.URL.
const EnvDatabaseURL = "FERRY_DATABASE_URL"

// DatabaseConfig chooses ferryd's database.
type DatabaseConfig struct {
	// URL is a PostgreSQL server's database (postgres://user:pass@host:5432/ferry),
	// which several ferryd nodes may share; empty is the embedded SQLite
	// file ferry.db in the repo. FERRY_DATABASE_URL, when set, wins.
	URL string
}

// DatabaseSource returns what db.Open opens for the repo: the URL of
// FERRY_DATABASE_URL or Database.URL, or the repo's SQLite file.
func (c Config) DatabaseSource(repo *Repo) string {
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		return u
	}
	if c.Database.URL != "" {
		return c.Database.URL
	}
	return repo.Path("ferry.db")
}
