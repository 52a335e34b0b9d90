package sender

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/ferry-fil/ferry/db/dbtest"
)

// TestMain runs the package's tests on each database (dbtest.Twice) and
// fails them if any goroutine outlives them (except those package init
// started).
func TestMain(m *testing.M) { goleak.VerifyTestMain(dbtest.Twice(m), goleak.IgnoreCurrent()) }
