package limit

import "github.com/prometheus/client_golang/prometheus"

// metrics are the supplier limits' collectors, by supplier (and host where
// the limit is a host's). They work unregistered when no Registerer is given.
type metrics struct {
	state       *prometheus.GaugeVec
	inFlight    *prometheus.GaugeVec
	waiting     *prometheus.GaugeVec
	waited      *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	opened      *prometheus.CounterVec
	probes      *prometheus.CounterVec
	hedges      *prometheus.CounterVec
	shared      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	sh := []string{"supplier", "host"}
	m := &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aggregator_supplier_breaker_state",
			Help: "A supplier host's circuit breaker: 0 closed, 1 open, 2 half-open."}, sh),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aggregator_supplier_in_flight",
			Help: "Calls in flight to a supplier host (capped by max-in-flight)."}, sh),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aggregator_supplier_waiting",
			Help: "Calls waiting for a free in-flight slot of a supplier host."}, sh),
		waited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aggregator_supplier_waited_total",
			Help: "Calls that had to wait for a free in-flight slot, by supplier host and whether they got one (result=ok|timeout)."},
			[]string{"supplier", "host", "result"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aggregator_supplier_rate_limited_total",
			Help: "Calls refused at once over a supplier's quota (cause rate_limited), by window."}, []string{"supplier", "window"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aggregator_supplier_circuit_open_total",
			Help: "Calls refused at once while a supplier host's breaker was open or probing (cause circuit_open)."}, sh),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aggregator_supplier_breaker_opened_total",
			Help: "Times a supplier host's breaker opened."}, sh),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aggregator_supplier_breaker_probes_total",
			Help: "Half-open probe calls by result (success closes the breaker, failure opens it again, neutral lets the next call probe)."},
			[]string{"supplier", "host", "result"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aggregator_supplier_hedged_total",
			Help: "Second calls sent for an idempotent supplier's slow call, by which answer won (first|second)."},
			[]string{"supplier", "won"}),
		shared: prometheus.NewGauge(prometheus.GaugeOpts{Name: "aggregator_supplier_quota_shared",
			Help: "1 while quotas are counted in Redis, 0 while this instance counts alone (no Redis configured, or Redis down)."}),
	}
	if reg != nil {
		reg.MustRegister(m.state, m.inFlight, m.waiting, m.waited, m.rateLimited, m.rejected, m.opened, m.probes, m.hedges, m.shared)
	}
	return m
}

// forget drops a supplier's series once a reload removed it.
func (m *metrics) forget(supplier string) {
	l := prometheus.Labels{"supplier": supplier}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{m.state, m.inFlight, m.waiting, m.waited,
		m.rateLimited, m.rejected, m.opened, m.probes, m.hedges} {
		v.DeletePartialMatch(l)
	}
}
