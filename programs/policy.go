package programs

// A program's policy: the templates it may call, its rate, its monthly
// cap and its expiry, and Charge, which enforces them.

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/twokey/twokey"
)

// Rate is N requests per Per; the zero Rate is unlimited.
type Rate struct {
	N   int           `json:"n,omitempty"`
	Per time.Duration `json:"per,omitempty"`
}

var rateRE = regexp.MustCompile(`^(\d+)\s*/\s*(s|m|h|d|\d+[a-z]+)$`)

// ParseRate reads "60/m" (also /s, /h, /d, or a duration such as /30s).
// "" and "0" are unlimited.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return Rate{}, nil
	}
	sm := rateRE.FindStringSubmatch(s)
	if sm == nil {
		return Rate{}, fmt.Errorf("rate %q: give N/UNIT, e.g. 60/m, 10/s or 1000/h", s)
	}
	n, err := strconv.Atoi(sm[1])
	if err != nil || n < 1 || n > 1_000_000 {
		return Rate{}, fmt.Errorf("rate %q: N must be from 1 to 1000000", s)
	}
	var per time.Duration
	switch sm[2] {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	case "d":
		per = 24 * time.Hour
	default:
		if per, err = time.ParseDuration(sm[2]); err != nil || per < time.Second {
			return Rate{}, fmt.Errorf("rate %q: the period must be at least 1s", s)
		}
	}
	return Rate{N: n, Per: per}, nil
}

func (r Rate) String() string {
	if r.N == 0 {
		return "unlimited"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h", 24 * time.Hour: "d"}[r.Per]
	if unit == "" {
		unit = r.Per.String()
	}
	return fmt.Sprintf("%d/%s", r.N, unit)
}

// Policy is what a program key may do.
type Policy struct {
	// Templates are globs (path.Match) of template names; empty allows any
	// call, a non-empty list only calls of a matching template.
	Templates []string  `json:"templates,omitempty"`
	Rate      Rate      `json:"rate"`
	Monthly   int64     `json:"monthly,omitempty"` // requests per calendar month (UTC); 0 = no cap
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// AllowsTemplate reports whether the policy lets a call of template through.
func (p *Policy) AllowsTemplate(template string) bool {
	if len(p.Templates) == 0 {
		return true
	}
	for _, g := range p.Templates {
		if ok, _ := path.Match(g, template); ok && template != "" {
			return true
		}
	}
	return false
}

// CheckTemplate refuses, with forbidden naming the list, a call of
// template ("" for a call that matches no catalog template) that the
// program's policy does not allow. Charge checks it; a question that
// charges nothing (a preview, a template's description) asks it alone.
func (p *Program) CheckTemplate(template string) error {
	if p.Policy.AllowsTemplate(template) {
		return nil
	}
	if template == "" {
		return twokey.Errorf(twokey.EForbidden, "program %q may call only templates %s; this call is not one of the catalog's templates", p.Name, strings.Join(p.Policy.Templates, ", "))
	}
	return twokey.Errorf(twokey.EForbidden, "program %q may call only templates %s, not %s", p.Name, strings.Join(p.Policy.Templates, ", "), twokey.Clip(template))
}

// retryError is a refusal that passes with time: over the rate, or the
// monthly cap until the month turns.
type retryError struct {
	err   *twokey.Error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

func retryLater(after time.Duration, err *twokey.Error) error {
	return &retryError{err: err, after: after}
}

// RetryAfter is how long after which a refusal of Charge may pass (the
// rate's next token, the month's turn), or 0 when waiting does not help.
func RetryAfter(err error) time.Duration {
	var re *retryError
	if errors.As(err, &re) {
		return re.after
	}
	return 0
}

func checkPolicy(p *Policy, now time.Time) error {
	for _, g := range p.Templates {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			return twokey.Errorf(twokey.EBadPayload, "template glob %q is malformed (use names and *, e.g. hn.*)", twokey.Clip(g))
		}
	}
	if p.Rate.N < 0 || (p.Rate.N > 0) != (p.Rate.Per > 0) {
		return twokey.Errorf(twokey.EBadPayload, "rate must be N per a positive period, e.g. 60/m")
	}
	if p.Monthly < 0 {
		return twokey.Errorf(twokey.EBadPayload, "the monthly cap must be positive (or 0 for none)")
	}
	if !p.ExpiresAt.IsZero() && !p.ExpiresAt.After(now) {
		return twokey.Errorf(twokey.EBadPayload, "expiry %s is already past", p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// usable refuses a program that is disabled or expired at now.
func usable(p *Program, now time.Time) error {
	switch {
	case !p.Enabled:
		return twokey.Errorf(twokey.EUnauthorized, "program key %q is disabled; an operator enables it with 'twokey keys enable %s'", p.Name, p.Name)
	case !p.Policy.ExpiresAt.IsZero() && !now.Before(p.Policy.ExpiresAt):
		return twokey.Errorf(twokey.EUnauthorized, "program key %q expired at %s; an operator makes a new one", p.Name, p.Policy.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Charge checks the named program's policy for a call of template ("" for
// a call that matches no template) and, if it passes, counts it against
// the rate and the monthly cap, durably, in one step. refund undoes the
// monthly charge when the gateway then refuses the request.
func (r *Registry) Charge(name, template string) (refund func(), err error) {
	now := r.now()
	r.mu.Lock()
	p := r.byName[name]
	if p == nil {
		r.mu.Unlock()
		return nil, twokey.Errorf(twokey.EUnauthorized, "program key %q has been deleted", twokey.Clip(name))
	}
	// Checked again: the key may have been disabled, or have expired,
	// since it was authenticated.
	if err := usable(p, now); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if err := p.CheckTemplate(template); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	month := monthOf(now)
	if p.Month != month {
		p.Month, p.MonthCount = month, 0
	}
	if p.Policy.Monthly > 0 && p.MonthCount >= p.Policy.Monthly {
		r.mu.Unlock()
		y, m, _ := now.UTC().Date()
		reset := time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
		return nil, retryLater(reset.Sub(now), twokey.Errorf(twokey.ERateLimited, "program %q has made its %d requests for %s, its monthly cap; it resets on the 1st (UTC, %s) or an operator raises it", p.Name, p.Policy.Monthly, month, reset.Format(time.RFC3339)))
	}
	if p.Policy.Rate.N > 0 {
		lim := r.limiters[name]
		if lim == nil {
			lim = rate.NewLimiter(rate.Limit(float64(p.Policy.Rate.N)/p.Policy.Rate.Per.Seconds()), p.Policy.Rate.N)
			r.limiters[name] = lim
		}
		if !lim.AllowN(now, 1) {
			res := lim.ReserveN(now, 1)
			wait := res.DelayFrom(now)
			res.CancelAt(now)
			r.mu.Unlock()
			return nil, retryLater(wait, twokey.Errorf(twokey.ERateLimited, "program %q is over its rate of %s; retry in %s", p.Name, p.Policy.Rate, wait.Round(time.Millisecond)))
		}
	}
	p.MonthCount++
	p.LastUsed = now
	v := r.bump(name)
	r.mu.Unlock()
	undo := func() {
		r.mu.Lock()
		q := r.byName[name]
		if q == nil || q != p || q.Month != month || q.MonthCount == 0 {
			r.mu.Unlock()
			return
		}
		q.MonthCount--
		v := r.bump(name)
		r.mu.Unlock()
		_ = r.save(name, v) // best effort: an over-count errs on the safe side
	}
	if err := r.save(name, v); err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}
