package notify

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/twokey/twokey/api"
)

// stats counts attempts by target and result.
type stats struct {
	deliveries *prometheus.CounterVec
}

func newStats() *stats {
	return &stats{deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twokey_webhook_deliveries_total",
		Help: "Webhook attempts by target and result: delivered, failed (to be retried) or dead (given up)."}, []string{"target", "result"})}
}

// count counts one attempt that left e in state.
func (s *stats) count(target, state string) {
	result := "failed"
	switch state {
	case api.DeliveryDelivered:
		result = "delivered"
	case api.DeliveryDead:
		result = "dead"
	}
	s.deliveries.WithLabelValues(target, result).Inc()
}

var (
	queuedDesc = prometheus.NewDesc("twokey_webhook_queued", "Notifications waiting for delivery, by target.", []string{"target"}, nil)
	oldestDesc = prometheus.NewDesc("twokey_webhook_oldest_queued_seconds", "Age of the oldest notification waiting for delivery, by target (0: none).", []string{"target"}, nil)
)

// Collector returns the notifier's metrics, for a registry:
// twokey_webhook_deliveries_total{target,result}, twokey_webhook_queued
// and twokey_webhook_oldest_queued_seconds{target}.
func (n *Notifier) Collector() prometheus.Collector { return collector{n} }

type collector struct{ n *Notifier }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	c.n.stats.deliveries.Describe(ch)
	ch <- queuedDesc
	ch <- oldestDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.n.stats.deliveries.Collect(ch)
	now := c.n.clock.Now()
	for _, w := range c.n.Targets() {
		age := 0.0
		if !w.OldestQueued.IsZero() {
			age = max(now.Sub(w.OldestQueued).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(w.Queued), w.Name)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, w.Name)
	}
}
