package limit

import "github.com/prometheus/client_golang/prometheus"

// metrics are the supplier limits' collectors, by supplier (and host where
// the limit is a host's). They work unregistered when no Registerer is given.
type metrics struct {
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
		reg.MustRegister(m.waited, m.rateLimited, m.rejected, m.opened, m.probes, m.hedges, m.shared)
	}
	return m
}

// forget drops a supplier's series once a reload removed it.
func (m *metrics) forget(supplier string) {
	l := prometheus.Labels{"supplier": supplier}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{m.waited,
		m.rateLimited, m.rejected, m.opened, m.probes, m.hedges} {
		v.DeletePartialMatch(l)
	}
}

// hostGauges reads the gauges of every host when /metrics is scraped (the
// gates and breakers hold the numbers; a call updates no gauge).
type hostGauges struct {
	l                        *Limiter
	state, inFlight, waiting *prometheus.Desc
}

func newHostGauges(l *Limiter) *hostGauges {
	sh := []string{"supplier", "host"}
	return &hostGauges{l: l,
		state:    prometheus.NewDesc("aggregator_supplier_breaker_state", "A supplier host's circuit breaker: 0 closed, 1 open, 2 half-open.", sh, nil),
		inFlight: prometheus.NewDesc("aggregator_supplier_in_flight", "Calls in flight to a supplier host (capped by max-in-flight).", sh, nil),
		waiting:  prometheus.NewDesc("aggregator_supplier_waiting", "Calls waiting for a free in-flight slot of a supplier host.", sh, nil),
	}
}

func (g *hostGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.state
	ch <- g.inFlight
	ch <- g.waiting
}

func (g *hostGauges) Collect(ch chan<- prometheus.Metric) {
	now := g.l.clock.Now()
	g.l.mu.Lock()
	defer g.l.mu.Unlock()
	for _, h := range g.l.hosts {
		state, _, _ := h.breaker.State(now)
		active, waiting := h.gate.counts()
		name := h.supplier.name
		ch <- prometheus.MustNewConstMetric(g.state, prometheus.GaugeValue, float64(state), name, h.key)
		ch <- prometheus.MustNewConstMetric(g.inFlight, prometheus.GaugeValue, float64(active), name, h.key)
		ch <- prometheus.MustNewConstMetric(g.waiting, prometheus.GaugeValue, float64(waiting), name, h.key)
	}
}
