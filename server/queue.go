package server

import (
	"container/list"
	"sync"
)

// queue holds the tasks waiting for a PHP process and starts them fairly:
// round-robin across sessions, at most capacity at once in all, and at most
// perSession at once for one session, so one search with thousands of
// suppliers cannot starve the others. It owns every task's queue state.
type queue struct {
	mu         sync.Mutex
	capacity   int
	perSession int
	running    int
	queued     int
	ring       *list.List // *taskList of sessions with queued tasks, next to serve first
	start      func(*task)
	launch     func([]*task) // starts picked tasks; goroutines unless a test says otherwise
	runners    *spares[*task]
}

// taskList is one session's queued tasks; it lives in the session and is
// guarded by the queue's mutex.
type taskList struct {
	tasks   list.List // *task, FIFO
	running int
	inRing  *list.Element
}

func newQueue(capacity, perSession int, start func(*task)) *queue {
	if perSession < 1 || perSession > capacity {
		perSession = capacity
	}
	q := &queue{capacity: capacity, perSession: perSession, ring: list.New(), start: start}
	q.runners = newSpares(start)
	q.launch = q.goLaunch
	return q
}

// push queues t and starts what may start; waiting says whether t is
// still in the queue.
func (q *queue) push(t *task) (waiting bool) {
	q.mu.Lock()
	l := &t.sess.queued
	t.elem = l.tasks.PushBack(t)
	q.queued++
	if l.inRing == nil {
		l.inRing = q.ring.PushBack(l)
	}
	started := q.dispatchLocked()
	waiting = t.elem != nil
	q.mu.Unlock()
	q.launch(started)
	return waiting
}

// remove takes t out of the queue if it is still waiting; false if it has
// already started (or was removed).
func (q *queue) remove(t *task) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.elem == nil {
		return false
	}
	l := &t.sess.queued
	l.tasks.Remove(t.elem)
	t.elem = nil
	q.queued--
	if l.tasks.Len() == 0 && l.inRing != nil {
		q.ring.Remove(l.inRing)
		l.inRing = nil
	}
	return true
}

// done frees the slot of a started task and starts what may start.
func (q *queue) done(t *task) {
	q.mu.Lock()
	q.running--
	t.sess.queued.running--
	started := q.dispatchLocked()
	q.mu.Unlock()
	q.launch(started)
}

// dispatchLocked picks the tasks to start now, round-robin.
func (q *queue) dispatchLocked() []*task {
	var started []*task
	for q.running < q.capacity {
		var picked *task
		for e := q.ring.Front(); e != nil; e = e.Next() {
			l := e.Value.(*taskList)
			if l.running >= q.perSession {
				continue
			}
			picked = l.tasks.Remove(l.tasks.Front()).(*task)
			picked.elem = nil
			q.queued--
			l.running++
			if l.tasks.Len() == 0 {
				q.ring.Remove(e)
				l.inRing = nil
			} else {
				q.ring.MoveToBack(e)
			}
			break
		}
		if picked == nil {
			break
		}
		q.running++
		started = append(started, picked)
	}
	return started
}

// goLaunch starts each task on a goroutine of its own, reused.
func (q *queue) goLaunch(tasks []*task) {
	for _, t := range tasks {
		q.runners.launch(t)
	}
}

// lengths reports the tasks waiting and running.
func (q *queue) lengths() (queued, running int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued, q.running
}
