package server

import (
	"reflect"
	"sync"
	"testing"
)

// TestQueueRoundRobin: tasks start round-robin across sessions, within the
// global capacity and the per-session cap.
func TestQueueRoundRobin(t *testing.T) {
	var mu sync.Mutex
	var started []string
	q := newQueue(3, 2, func(t *task) {
		mu.Lock()
		started = append(started, t.class)
		mu.Unlock()
	})
	q.launch = func(ts []*task) { // start synchronously to see the order
		for _, t := range ts {
			q.start(t)
		}
	}
	a, b := &session{id: "a"}, &session{id: "b"}
	var tasks []*task
	for i, s := range []*session{a, a, a, a, b, b} {
		tk := &task{id: int64(i), sess: s, class: s.id + string(rune('0'+i))}
		tasks = append(tasks, tk)
	}
	for _, tk := range tasks[:4] {
		q.push(tk) // a0, a1 start; a2 waits (cap 2 per session)
	}
	if want := []string{"a0", "a1"}; !reflect.DeepEqual(started, want) {
		t.Fatalf("started %v want %v", started, want)
	}
	q.push(tasks[4]) // b4 starts: 3 running, capacity reached
	q.push(tasks[5])
	if want := []string{"a0", "a1", "b4"}; !reflect.DeepEqual(started, want) {
		t.Fatalf("started %v want %v", started, want)
	}
	if !q.remove(tasks[3]) || q.remove(tasks[3]) {
		t.Fatal("remove of a waiting task should work once")
	}
	q.done(tasks[0]) // a slot frees: a is first in the ring (it waited first)
	if want := []string{"a0", "a1", "b4", "a2"}; !reflect.DeepEqual(started, want) {
		t.Fatalf("started %v want %v", started, want)
	}
	q.done(tasks[4])
	if want := []string{"a0", "a1", "b4", "a2", "b5"}; !reflect.DeepEqual(started, want) {
		t.Fatalf("started %v want %v", started, want)
	}
	if n, r := q.lengths(); n != 0 || r != 3 {
		t.Fatalf("queued %d running %d, want 0 and 3", n, r)
	}
}
