package fetch

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
)

// metrics are the supplier calls' collectors; nil records nothing.
type metrics struct {
	inFlight  prometheus.Gauge
	duration  *prometheus.HistogramVec
	responses *prometheus.CounterVec
	errors    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aggregator_fetch_in_flight", Help: "Supplier calls (\\Aggregator\\fetch()) in flight now."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aggregator_fetch_duration_seconds",
			Help:    "Time to a supplier's answer (headers and body), by host.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"host"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_fetch_responses_total",
			Help: "Supplier answers, by host and status class (2xx, 3xx, 4xx, 5xx).",
		}, []string{"host", "status"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_fetch_errors_total",
			Help: "Supplier calls with no answer, by cause (" + aggregator.Join(aggregator.FetchCauses) + ").",
		}, []string{"cause"}),
	}
	reg.MustRegister(m.inFlight, m.duration, m.responses, m.errors)
	return m
}

// started counts a call in flight; call what it returns when it ends.
func (m *metrics) started() func() {
	if m == nil {
		return func() {}
	}
	m.inFlight.Inc()
	return m.inFlight.Dec
}

func (m *metrics) answered(host string, status int, took time.Duration) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(host).Observe(took.Seconds())
	m.responses.WithLabelValues(host, strconv.Itoa(status/100)+"xx").Inc()
}

func (m *metrics) failed(cause aggregator.FetchCause) {
	if m != nil {
		m.errors.WithLabelValues(string(cause)).Inc()
	}
}
