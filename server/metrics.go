package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
)

// metrics are the server's Prometheus collectors (names start aggregator_).
type metrics struct {
	sessionsAlive    prometheus.Gauge
	sessionsTotal    prometheus.Counter
	sessionsEnded    *prometheus.CounterVec
	sessionsRejected prometheus.Counter
	tasksTotal       *prometheus.CounterVec
	taskDuration     *prometheus.HistogramVec
	limitHits        *prometheus.CounterVec
	messagesSent     prometheus.Counter
	connOpen         *prometheus.GaugeVec
	connRefused      *prometheus.CounterVec
	fdExhausted      *prometheus.CounterVec
	opsRefused       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, q *queue) *metrics {
	m := &metrics{
		sessionsAlive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aggregator_sessions_alive", Help: "Websocket sessions running now."}),
		sessionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aggregator_sessions_total", Help: "Websocket sessions started."}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_sessions_ended_total",
			Help: "Sessions ended, by reason: " + aggregator.Join(Endings) + ".",
		}, []string{"reason"}),
		sessionsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aggregator_sessions_rejected_total",
			Help: "Websocket upgrades refused with 503 because aggregator.limit.sessions were alive."}),
		tasksTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_tasks_total",
			Help: "Tasks ended, by kind (suppliers, items) and outcome (SUCCESS, an E_* code, or SHUTDOWN when the server stopped).",
		}, []string{"kind", "outcome"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aggregator_task_duration_seconds",
			Help:    "Time from queueing to the end of a task, by kind.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_limit_hits_total",
			Help: "Protective limits hit, by limit (" + aggregator.Join(aggregator.Limits) + ").",
		}, []string{"limit"}),
		messagesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aggregator_messages_sent_total", Help: "Websocket messages queued for browsers."}),
		connOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aggregator_connections_open",
			Help: "TCP connections accepted and not closed yet (websockets, HTTP, refusals), by listener (main, ops).",
		}, []string{"listener"}),
		connRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_connections_refused_total",
			Help: "Connections answered 503 at accept, by listener and reason (limit: aggregator.limit.connections; no_fds: out of file descriptors).",
		}, []string{"listener", "reason"}),
		fdExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_accept_fd_exhausted_total",
			Help: "Accepts that failed for lack of file descriptors (EMFILE, ENFILE), by listener.",
		}, []string{"listener"}),
		opsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aggregator_ops_refused_total",
			Help: "Requests for /workers, /metrics or /debug/pprof/ on the main port refused (403): not local, or through a proxy.",
		}),
	}
	queueLen := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aggregator_queue_length", Help: "Tasks waiting for a PHP process."},
		func() float64 { n, _ := q.lengths(); return float64(n) })
	running := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aggregator_tasks_running", Help: "Tasks handed to PHP now."},
		func() float64 { _, n := q.lengths(); return float64(n) })
	reg.MustRegister(m.sessionsAlive, m.sessionsTotal, m.sessionsEnded, m.sessionsRejected,
		m.tasksTotal, m.taskDuration, m.limitHits, m.messagesSent, m.connOpen, m.connRefused, m.fdExhausted, m.opsRefused,
		queueLen, running)
	return m
}

// limitHit counts a protective limit hit.
func (m *metrics) limitHit(l aggregator.Limit) { m.limitHits.WithLabelValues(string(l)).Inc() }
