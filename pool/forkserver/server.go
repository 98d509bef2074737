package forkserver

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Timing of the parents.
const (
	// defaultStartTimeout is how long a new parent may take to say hello
	// (PHP starts in about 20 ms).
	defaultStartTimeout = 10 * time.Second
	// retryAfter is how long after a parent failed to start its calls go
	// the old way before another start is tried: a PHP that dies at
	// start-up would otherwise cost a failed start per call.
	retryAfter = 5 * time.Second
	// closeWait bounds how long Close waits for the parents to exit after
	// their kill.
	closeWait = 5 * time.Second
)

// Config configures a Server.
type Config struct {
	Runtime      string        // absolute path of src/ForkServer.php
	Dir          string        // the parents' working directory ("" = ours); each call has its own
	Env          []string      // the parents' environment (nil = ours); each call has its own
	StartTimeout time.Duration // how long a new parent may take to be ready; 0 = 10 s
	Log          *zap.Logger   // INFO when a PHP cannot fork, WARN for a parent's output or death
	// NoQuickExit makes children exit PHP's own way, module shutdown
	// included (about 7 ms of CPU more each; src/ForkExit.php says why
	// it is skipped by default).
	NoQuickExit bool
}

// Server starts calls as forks of warm PHP parents, one parent per PHP
// program and flags, each started on first use (or by Prepare).
type Server struct {
	cfg Config

	mu     sync.Mutex
	slots  map[string]*slot
	closed bool
}

// slot is one command's parent; its mu is held while a parent starts so
// that concurrent first calls start one, not many.
type slot struct {
	cmd Command

	mu          sync.Mutex
	closed      bool      // the Server closed: no more parents
	cur         *parent   // serving; nil until started, or after it died
	unavailable error     // the PHP cannot fork: no retry until Reload
	retry       time.Time // no start before this, after one failed
	old         []*parent // retired, finishing their calls
}

// New returns a Server; it starts no process until a call needs one.
func New(cfg Config) *Server {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = defaultStartTimeout
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.NoQuickExit {
		cfg.Env = append(cfg.Env[:len(cfg.Env):len(cfg.Env)], "AGGREGATOR_FORK_QUICK_EXIT=0")
	}
	return &Server{cfg: cfg, slots: map[string]*slot{}}
}

// Start starts one call as a fork: the child's pid, its stdout and stderr
// copied to the Spec's writers, its end (Done, Err) and Kill of its
// group. ErrNotEligible or ErrUnavailable (errors.Is) say to start it the
// old way, and leave Spec.ExtraFiles open for that; any other error is
// the call's own (its directory does not exist, the fork failed) and
// Spec.ExtraFiles are closed, as they are once the call started.
func (s *Server) Start(spec Spec) (*Proc, error) {
	c, err := Parse(spec.Words)
	if err != nil {
		return nil, err
	}
	sl, err := s.slot(c)
	if err != nil {
		return nil, err
	}
	proc, err := s.start(sl, c, spec)
	if err != nil && !errors.Is(err, ErrUnavailable) {
		closeFiles(spec.ExtraFiles...)
	}
	return proc, err
}

// start hands the call to the slot's parent; one replaced or gone before
// it took the request is followed by the current one, twice at most.
func (s *Server) start(sl *slot, c Command, spec Spec) (*Proc, error) {
	dir, err := callDir(spec.Dir)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		p, err := sl.parent(s.cfg)
		if err != nil {
			return nil, err
		}
		proc, err := p.start(c, spec, dir)
		if err != errRetired {
			return proc, err
		}
		if attempt == 2 {
			return nil, fmt.Errorf("%w: three parents in a row were replaced or gone", ErrUnavailable)
		}
	}
}

// Prepare starts the parent for a command now, so the first call does not
// wait for PHP's start-up and a PHP that cannot fork says so at once. A
// command that is not eligible gives ErrNotEligible.
func (s *Server) Prepare(words []string) error {
	c, err := Parse(words)
	if err != nil {
		return err
	}
	sl, err := s.slot(c)
	if err != nil {
		return err
	}
	_, err = sl.parent(s.cfg)
	return err
}

func (s *Server) slot(c Command) (*slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: closed", ErrUnavailable)
	}
	sl := s.slots[c.key()]
	if sl == nil {
		sl = &slot{cmd: Command{PHP: c.PHP, Flags: c.Flags}}
		s.slots[c.key()] = sl
	}
	return sl, nil
}

// parent is the slot's serving parent, started if there is none.
func (sl *slot) parent(cfg Config) (*parent, error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.cur != nil && sl.cur.alive() {
		return sl.cur, nil
	}
	sl.cur = nil
	if sl.closed {
		return nil, fmt.Errorf("%w: closed", ErrUnavailable)
	}
	if sl.unavailable != nil {
		return nil, sl.unavailable
	}
	if time.Now().Before(sl.retry) {
		return nil, fmt.Errorf("%w: the last start of %s failed less than %v ago", ErrUnavailable, sl.cmd, retryAfter)
	}
	p, err := startParent(sl.cmd, cfg)
	if err != nil {
		return nil, sl.failed(err, cfg.Log)
	}
	cfg.Log.Info("fork server ready", zap.String("fork_server", sl.cmd.String()), zap.Int("pid", p.cmd.Process.Pid))
	sl.cur = p
	return p, nil
}

// failed records a failed start and says why, once: the calls fall back.
func (sl *slot) failed(err error, log *zap.Logger) error {
	var u *UnavailableError
	if errors.As(err, &u) {
		sl.unavailable = u
		log.Info("fork server unavailable: exec calls start a new php each", zap.String("fork_server", sl.cmd.String()),
			zap.String("reason", u.Reason))
		return u
	}
	sl.retry = time.Now().Add(retryAfter)
	log.Warn("fork server failed to start: exec calls start a new php each for a while", zap.String("fork_server", sl.cmd.String()),
		zap.Error(err))
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Reload starts a new parent for every command that has one and retires
// the old parent: its calls in flight finish on it, new calls go to the
// new one. A parent that fails to start keeps the old one serving (the
// error says why). A PHP found unavailable is tried again on its next call.
func (s *Server) Reload() error {
	var errs []error
	for _, sl := range s.allSlots() {
		if err := sl.reload(s.cfg); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (sl *slot) reload(cfg Config) error {
	sl.mu.Lock()
	sl.unavailable, sl.retry = nil, time.Time{}
	sl.pruneOld()
	serving := sl.cur != nil && sl.cur.alive() && !sl.closed
	sl.mu.Unlock()
	if !serving {
		return nil // the next call starts one
	}
	// Started without the lock: calls meanwhile go to the old parent.
	p, err := startParent(sl.cmd, cfg)
	if err != nil {
		return fmt.Errorf("fork server for %s: the old one keeps serving: %w", sl.cmd, err)
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.closed {
		p.kill()
		return nil
	}
	old := sl.cur
	sl.cur = p
	cfg.Log.Info("fork server replaced", zap.String("fork_server", sl.cmd.String()), zap.Int("pid", p.cmd.Process.Pid))
	if old != nil {
		old.retire()
		sl.old = append(sl.old, old)
	}
	return nil
}

// pruneOld forgets retired parents that have exited.
func (sl *slot) pruneOld() {
	kept := sl.old[:0]
	for _, p := range sl.old {
		select {
		case <-p.exited:
		default:
			kept = append(kept, p)
		}
	}
	sl.old = kept
}

func (s *Server) allSlots() []*slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*slot, 0, len(s.slots))
	for _, sl := range s.slots {
		out = append(out, sl)
	}
	return out
}

// ParentInfo describes one warm parent.
type ParentInfo struct {
	PID       int
	Command   string // php and flags
	Calls     int    // children running
	Retired   bool   // replaced, finishing its calls
	QuickExit bool   // its children skip PHP's module shutdown (src/ForkExit.php)
}

// Parents lists the parents, serving and retired.
func (s *Server) Parents() []ParentInfo {
	var out []ParentInfo
	for _, sl := range s.allSlots() {
		sl.mu.Lock()
		if sl.cur != nil {
			out = append(out, ParentInfo{PID: sl.cur.cmd.Process.Pid, Command: sl.cmd.String(), Calls: sl.cur.calls(),
				Retired: !sl.cur.alive(), QuickExit: sl.cur.quick})
		}
		sl.pruneOld()
		for _, p := range sl.old {
			out = append(out, ParentInfo{PID: p.cmd.Process.Pid, Command: sl.cmd.String(), Calls: p.calls(), Retired: true, QuickExit: p.quick})
		}
		sl.mu.Unlock()
	}
	return out
}

// Close kills every parent and every call's process group and waits for
// the parents to exit; calls in flight end with ErrParentDied or a signal.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	var all []*parent
	for _, sl := range s.allSlots() {
		sl.mu.Lock()
		sl.closed = true
		if sl.cur != nil {
			all = append(all, sl.cur)
		}
		all = append(all, sl.old...)
		sl.cur, sl.old = nil, nil
		sl.mu.Unlock()
	}
	for _, p := range all {
		p.kill()
	}
	deadline := time.After(closeWait)
	for _, p := range all {
		select {
		case <-p.quiet: // exited, and nothing of it logs any more
		case <-deadline:
			return fmt.Errorf("fork server pid %d did not exit after its kill", p.cmd.Process.Pid)
		}
	}
	return nil
}
