package server

import (
	"fmt"
	"sync"
	"time"
)

// Stats are the counters of /stats (SPEC §7). One mutex guards them all so
// every snapshot keeps the invariants exactly:
// sessionTotal = alive + finished, taskTotal = pending + succeeded + failed.
type Stats struct {
	mu                                 sync.Mutex
	started                            time.Time
	sessionTotal, sessionFinished      int64
	taskTotal, taskSucceeded, taskFail int64
}

// StatsSnapshot is the JSON answer of /stats.
type StatsSnapshot struct {
	Uptime          string `json:"uptime"`
	SessionTotal    int64  `json:"sessionTotal"`
	SessionAlive    int64  `json:"sessionAlive"`
	SessionFinished int64  `json:"sessionFinished"`
	TaskTotal       int64  `json:"taskTotal"`
	TaskPending     int64  `json:"taskPending"`
	TaskSucceeded   int64  `json:"taskSucceeded"`
	TaskFailed      int64  `json:"taskFailed"`
}

func newStats() *Stats { return &Stats{started: time.Now()} }

func (s *Stats) sessionStarted() {
	s.mu.Lock()
	s.sessionTotal++
	s.mu.Unlock()
}

func (s *Stats) sessionEnded() {
	s.mu.Lock()
	s.sessionFinished++
	s.mu.Unlock()
}

func (s *Stats) taskAdded() {
	s.mu.Lock()
	s.taskTotal++
	s.mu.Unlock()
}

func (s *Stats) taskEnded(ok bool) {
	s.mu.Lock()
	if ok {
		s.taskSucceeded++
	} else {
		s.taskFail++
	}
	s.mu.Unlock()
}

// Snapshot returns the counters at one instant.
func (s *Stats) Snapshot() StatsSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StatsSnapshot{
		Uptime:          humanDuration(time.Since(s.started)),
		SessionTotal:    s.sessionTotal,
		SessionAlive:    s.sessionTotal - s.sessionFinished,
		SessionFinished: s.sessionFinished,
		TaskTotal:       s.taskTotal,
		TaskPending:     s.taskTotal - s.taskSucceeded - s.taskFail,
		TaskSucceeded:   s.taskSucceeded,
		TaskFailed:      s.taskFail,
	}
}

// humanDuration writes d like "1d 2h 3m 4s", leaving out leading zero units.
func humanDuration(d time.Duration) string {
	sec := int64(d / time.Second)
	days, sec := sec/86400, sec%86400
	h, sec := sec/3600, sec%3600
	m, sec := sec/60, sec%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh %dm %ds", days, h, m, sec)
	case h > 0:
		return fmt.Sprintf("%dh %dm %ds", h, m, sec)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, sec)
	}
	return fmt.Sprintf("%ds", sec)
}
