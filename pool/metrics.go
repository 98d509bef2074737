package pool

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
)

// Metrics are the pool's Prometheus collectors. A nil *Metrics records nothing,
// so tests can run runners without a registry.
type Metrics struct {
	execStartedTotal *prometheus.CounterVec
	workerStarts     *prometheus.CounterVec
	workerExits      *prometheus.CounterVec
	// gauges reads the supervisor's workers at scrape time; set by observe.
	gauges atomic.Pointer[func() (busy, idle, jobs int)]
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
	}
	gauge := func(name, help string, pick func(busy, idle, jobs int) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			f := m.gauges.Load()
			if f == nil {
				return 0
			}
			return float64(pick((*f)()))
		})
	}
	reg.MustRegister(m.execStartedTotal, m.workerStarts, m.workerExits,
		gauge("aggregator_workers_busy", "PHP workers with at least one job in flight.",
			func(b, _, _ int) int { return b }),
		gauge("aggregator_workers_idle", "PHP workers ready, with no job in flight.",
			func(_, i, _ int) int { return i }),
		gauge("aggregator_jobs_in_flight", "Jobs in PHP workers now (several per worker with aggregator.pool.concurrency > 1).",
			func(_, _, j int) int { return j }))
	return m
}

// observe makes the worker gauges read f.
func (m *Metrics) observe(f func() (busy, idle, jobs int)) {
	if m != nil {
		m.gauges.Store(&f)
	}
}

func (m *Metrics) execStarted(k aggregator.Kind, ok bool) {
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

func (m *Metrics) workerReplaced(reason Reason) {
	if m != nil {
		m.workerExits.WithLabelValues(string(reason)).Inc()
	}
}
