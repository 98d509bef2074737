package pool

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pool's Prometheus collectors. A nil *Metrics records nothing,
// so tests can run runners without a registry.
type Metrics struct {
	execStartedTotal *prometheus.CounterVec
	workerStarts     *prometheus.CounterVec
	workerExits      *prometheus.CounterVec
	workersBusy      prometheus.Gauge
	workersIdle      prometheus.Gauge
}

// NewMetrics registers the pool's collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		execStartedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_exec_processes_started_total",
			Help: "PHP processes started in exec mode, by job kind and whether the start worked.",
		}, []string{"kind", "result"}),
		workerStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_worker_starts_total",
			Help: "PHP worker starts, by result (ok or failed).",
		}, []string{"result"}),
		workerExits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_worker_restarts_total",
			Help: "PHP workers replaced, by reason (timeout, crash, fatal, max_jobs, max_memory, reload, health, protocol, output_limit).",
		}, []string{"reason"}),
		workersBusy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aggregator_workers_busy", Help: "PHP workers running a job now."}),
		workersIdle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aggregator_workers_idle", Help: "PHP workers ready for a job."}),
	}
	reg.MustRegister(m.execStartedTotal, m.workerStarts, m.workerExits, m.workersBusy, m.workersIdle)
	return m
}

func (m *Metrics) execStarted(k Kind, ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.execStartedTotal.WithLabelValues(k.String(), result).Inc()
}

func (m *Metrics) workerStarted(ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.workerStarts.WithLabelValues(result).Inc()
}

func (m *Metrics) workerReplaced(reason string) {
	if m != nil {
		m.workerExits.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) idle(delta float64) {
	if m != nil {
		m.workersIdle.Add(delta)
	}
}

func (m *Metrics) busy(delta float64) {
	if m != nil {
		m.workersBusy.Add(delta)
	}
}
