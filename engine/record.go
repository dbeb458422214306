package engine

import (
	"time"

	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// Kinds of Event.
const (
	EventSubmitted = "submitted" // a request was accepted
	EventClosed    = "closed"    // it ended without a call: expired, rejected, cancelled, or failed (interrupted)
	EventExecuted  = "executed"  // its call finished: an upstream answer, or a failure (Reason)
)

// Event is one thing that happened to a request, as a Recorder hears it.
type Event struct {
	Kind         string
	Time         time.Time // the engine's clock when the change was built
	Conversation string
	// Request is the request as the change leaves it. It is read when the
	// change is committed (a program's key prefix is set on it after it
	// was built), and must not be kept or changed.
	Request  *gate.Request
	State    string // closed: the state reached
	Reason   string // closed: why; executed: set when the call failed
	Status   int    // executed: the upstream's HTTP status
	Duration time.Duration
}

// Recorder is an Observer that also keeps a durable record of requests
// (the request log). Puts returns what to write for ev, and the engine
// writes it in the very commit that makes ev happen: the record and the
// conversation's log are durable together or not at all, so a crash can
// never leave them disagreeing. Puts runs under the conversation's lock
// right before that commit: it must be quick and must not use the store
// (counters it keeps are store.Put.Add ops, summed inside the commit).
//
// The Observer methods are still called after the commit, for metrics.
type Recorder interface {
	Puts(ev Event) []store.Put
}

// record notes ev for ch's commit when the observer records.
func (e *Engine) record(ch *change, ev Event) {
	if _, ok := e.cfg.Observer.(Recorder); !ok {
		return
	}
	ev.Time = e.clock.Now()
	ev.Conversation = ch.c.st.ID
	ch.events = append(ch.events, ev)
}

// recordPuts returns what the recorder writes for ch's events.
func (e *Engine) recordPuts(ch *change) []store.Put {
	rec, ok := e.cfg.Observer.(Recorder)
	if !ok {
		return nil
	}
	var puts []store.Put
	for _, ev := range ch.events {
		puts = append(puts, rec.Puts(ev)...)
	}
	return puts
}
