package load

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// dist summarises a set of latencies.
type dist struct {
	N             int
	P50, P99, Max time.Duration
}

func summarize(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return dist{N: len(s), P50: quantile(s, 0.50), P99: quantile(s, 0.99), Max: s[len(s)-1]}
}

// quantile returns the nearest-rank q-quantile of sorted s.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// missed stands for a delivery that never arrived: slower than any that
// did, so that it lands at the top of a distribution instead of leaving it.
const missed = time.Duration(math.MaxInt64)

// ms formats a duration in milliseconds with two decimals.
func ms(d time.Duration) string {
	if d == missed {
		return "missing"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// rate is a count per second.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// num formats a number with thousands separators and no decimals (or one
// decimal below 100).
func num(f float64) string {
	if f < 100 && f != math.Trunc(f) {
		return fmt.Sprintf("%.1f", f)
	}
	s := fmt.Sprintf("%d", int64(math.Round(f)))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ratio formats a/b.
func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}
