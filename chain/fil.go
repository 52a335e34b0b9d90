package chain

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/filecoin-project/go-state-types/abi"
	fbig "github.com/filecoin-project/go-state-types/big"
)

// attoPerFIL is 10^18, the attoFIL in one FIL.
var attoPerFIL = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

// FIL returns n FIL in attoFIL.
func FIL(n int64) abi.TokenAmount {
	return fbig.Int{Int: new(big.Int).Mul(big.NewInt(n), attoPerFIL)}
}

// ParseFIL parses an amount as Lotus' types.ParseFIL does: a decimal number
// of FIL ("1.5", "2 FIL", "0.000001fil") or, with the suffix "attofil" or
// "afil", of attoFIL. The result must be a whole number of attoFIL.
func ParseFIL(s string) (abi.TokenAmount, error) {
	num := strings.TrimSpace(s)
	suffix := strings.TrimLeft(num, "-.0123456789")
	num = num[:len(num)-len(suffix)]
	atto := false
	switch strings.ToLower(strings.TrimSpace(suffix)) {
	case "", "fil":
	case "attofil", "afil":
		atto = true
	default:
		return fbig.Int{}, fmt.Errorf("parsing FIL amount %q: unknown unit %q", s, suffix)
	}
	if len(num) > 50 {
		return fbig.Int{}, fmt.Errorf("parsing FIL amount: %d characters is too long", len(num))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || num == "" {
		return fbig.Int{}, fmt.Errorf("parsing FIL amount %q: not a number", s)
	}
	if !atto {
		r.Mul(r, new(big.Rat).SetInt(attoPerFIL))
	}
	if !r.IsInt() {
		return fbig.Int{}, fmt.Errorf("parsing FIL amount %q: not a whole number of attoFIL", s)
	}
	return fbig.Int{Int: new(big.Int).Set(r.Num())}, nil
}

// FormatFIL prints an attoFIL amount in FIL as Lotus does: "1.5 FIL",
// "0 FIL", no trailing zeros.
func FormatFIL(a abi.TokenAmount) string {
	if a.Int == nil || a.Sign() == 0 {
		return "0 FIL"
	}
	r := new(big.Rat).SetFrac(a.Int, attoPerFIL)
	s := strings.TrimRight(strings.TrimRight(r.FloatString(18), "0"), ".")
	return s + " FIL"
}
