package client

import (
	"fmt"
	"math/big"
	"strings"

	fbig "github.com/filecoin-project/go-state-types/big"
)

// attoPerFIL is 10^18.
var attoPerFIL = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

// FormatFIL writes attoFIL as FIL with up to 18 decimals and no trailing
// zeros ("1.5", "0.000000000000000001", "0").
func FormatFIL(v fbig.Int) string {
	if v.Int == nil {
		return "0"
	}
	neg := v.Sign() < 0
	a := new(big.Int).Abs(v.Int)
	q, r := new(big.Int).QuoRem(a, attoPerFIL, new(big.Int))
	s := q.String()
	if r.Sign() != 0 {
		frac := fmt.Sprintf("%018s", r.String())
		s += "." + strings.TrimRight(frac, "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ParseFIL reads an amount of FIL ("1", "0.5", "2.25fil", "100 attofil"):
// plain numbers are FIL, a suffix "afil"/"attofil" means attoFIL.
func ParseFIL(s string) (fbig.Int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	atto := false
	switch {
	case strings.HasSuffix(t, "attofil"):
		t, atto = strings.TrimSpace(strings.TrimSuffix(t, "attofil")), true
	case strings.HasSuffix(t, "afil"):
		t, atto = strings.TrimSpace(strings.TrimSuffix(t, "afil")), true
	case strings.HasSuffix(t, "fil"):
		t = strings.TrimSpace(strings.TrimSuffix(t, "fil"))
	}
	if t == "" {
		return fbig.Int{}, fmt.Errorf("amount %q: no number", s)
	}
	r, ok := new(big.Rat).SetString(t)
	if !ok || strings.ContainsAny(t, "/eE") {
		return fbig.Int{}, fmt.Errorf("amount %q is not a decimal number", s)
	}
	if r.Sign() < 0 {
		return fbig.Int{}, fmt.Errorf("amount %q is negative", s)
	}
	if !atto {
		r.Mul(r, new(big.Rat).SetInt(attoPerFIL))
	}
	if !r.IsInt() {
		return fbig.Int{}, fmt.Errorf("amount %q has more precision than 1 attoFIL", s)
	}
	return fbig.Int{Int: new(big.Int).Set(r.Num())}, nil
}
