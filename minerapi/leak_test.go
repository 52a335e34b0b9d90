package minerapi

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/ferry-fil/ferry/db/dbtest"
)

// TestMain fails the package's tests if any goroutine outlives them
// (except those package init started).
func TestMain(m *testing.M) { goleak.VerifyTestMain(dbtest.Twice(m), goleak.IgnoreCurrent()) }
