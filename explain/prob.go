package explain

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Probability is an exact fraction, always in lowest terms, so that equal
// probabilities compare equal with ==.
type Probability struct{ Num, Den uint64 }

// Prob returns num/den in lowest terms.
func Prob(num, den uint64) Probability {
	return fromRat(new(big.Rat).SetFrac(new(big.Int).SetUint64(num), new(big.Int).SetUint64(den)))
}

// Certain is probability 1.
var Certain = Probability{1, 1}

func (p Probability) rat() *big.Rat {
	return new(big.Rat).SetFrac(new(big.Int).SetUint64(p.Num), new(big.Int).SetUint64(p.Den))
}

func fromRat(r *big.Rat) Probability {
	if !r.Num().IsUint64() || !r.Denom().IsUint64() {
		panic(fmt.Sprintf("explain: probability %s does not fit in 64 bits", r))
	}
	return Probability{r.Num().Uint64(), r.Denom().Uint64()}
}

func (p Probability) mul(q Probability) Probability {
	return fromRat(new(big.Rat).Mul(p.rat(), q.rat()))
}

func (p Probability) add(q Probability) Probability {
	if p.Den == 0 {
		return q
	}
	return fromRat(new(big.Rat).Add(p.rat(), q.rat()))
}

// Percent is the probability in percent.
func (p Probability) Percent() float64 {
	f, _ := new(big.Rat).Mul(p.rat(), big.NewRat(100, 1)).Float64()
	return f
}

// String is "1/3 (33.3%)", or "100%" for certainty.
func (p Probability) String() string {
	pct := strings.TrimSuffix(strconv.FormatFloat(p.Percent(), 'f', 1, 64), ".0") + "%"
	if p.Num == p.Den {
		return pct
	}
	return fmt.Sprintf("%d/%d (%s)", p.Num, p.Den, pct)
}
