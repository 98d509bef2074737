// Package procstat reads the CPU time of processes from /proc, for the
// benchmarks (pool/bench_test.go, bench/rrpeer, cmd/aggbench): on a shared
// machine the time a job takes varies with the neighbours, its CPU much less.
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

// Stat is what /proc/PID/stat says of a process's CPU.
type Stat struct {
	CPU    time.Duration // utime+stime: its own
	Reaped time.Duration // cutime+cstime: of its children that exited and were waited for
	PPID   int
}

// Read reads /proc/pid/stat; false when the process is gone.
func Read(pid int) (Stat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, false
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'. f[0] is field 3 (state): utime is field 14 → f[11].
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ticks := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(v) * time.Second / clockTick
	}
	ppid, _ := strconv.Atoi(f[1])
	return Stat{CPU: ticks(11) + ticks(12), Reaped: ticks(13) + ticks(14), PPID: ppid}, true
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
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := Read(p); ok && st.PPID == pid {
			out = append(out, p)
		}
	}
	return out
}
