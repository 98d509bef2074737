// Package procstat reads /proc/PID/stat, for the benchmarks (the CPU time
// of processes: on a shared machine the time a job takes varies with the
// neighbours, its CPU much less) and for the tests (is a PHP process gone,
// which processes are left in a group).
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux).
const clockTick = 100

// Stat is what /proc/PID/stat says of a process.
type Stat struct {
	State  byte // 'R', 'S', 'Z' (a zombie: exited, not waited for), ...
	PPID   int
	PGRP   int
	CPU    time.Duration // utime+stime: its own
	Reaped time.Duration // cutime+cstime: of its children that exited and were waited for
}

// Read reads /proc/pid/stat; false when the process is gone.
func Read(pid int) (Stat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, false
	}
	// The command name (field 2) may hold blanks and parentheses: fields
	// count from the last ')'. f[0] is field 3 (state): utime is field 14
	// → f[11].
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return Stat{}, false
	}
	num := func(i int) int { v, _ := strconv.Atoi(f[i]); return v }
	ticks := func(i int) time.Duration { return time.Duration(num(i)) * time.Second / clockTick }
	return Stat{State: f[0][0], PPID: num(1), PGRP: num(2),
		CPU: ticks(11) + ticks(12), Reaped: ticks(13) + ticks(14)}, true
}

// Alive reports whether pid is a process that has not exited (a zombie
// counts as gone: a container's init may never reap orphans).
func Alive(pid int) bool {
	st, ok := Read(pid)
	return ok && st.State != 'Z'
}

// CPU is the CPU time the processes have used (those gone count nothing).
func CPU(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		if st, ok := Read(pid); ok {
			sum += st.CPU
		}
	}
	return sum
}

// Self is the CPU time this process has used.
func Self() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Children lists the processes whose parent is pid.
func Children(pid int) []int {
	return Find(func(st Stat) bool { return st.PPID == pid })
}

// Find lists the processes whose Stat matches.
func Find(match func(Stat) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := Read(p); ok && match(st) {
			out = append(out, p)
		}
	}
	return out
}
