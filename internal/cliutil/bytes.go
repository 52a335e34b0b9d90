package cliutil

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseBytes reads a size in bytes with an optional binary unit: "2048",
// "1MiB", "32GiB", "1 TiB" (B, KiB, MiB, GiB, TiB). HumanBytes' output
// with a whole number reads back.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size in bytes (like 1048576, 1MiB or 32GiB)", s)
	}
	return v * mult, nil
}
