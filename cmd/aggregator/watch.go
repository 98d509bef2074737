package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// watchDebounce is how long the watcher waits after the last change to a PHP
// file before it reloads: an editor's save (or a git checkout) is many events.
const watchDebounce = 300 * time.Millisecond

// watchSkip are directories the watcher never descends into.
var watchSkip = map[string]bool{"vendor": true, "node_modules": true}

// watchRoots are the directories watch mode watches: the handlers file's
// directory and, when the worker command names a *.php entry, the src/
// directory beside it (the worker's own classes).
func watchRoots(c *Config) []string {
	roots := []string{filepath.Dir(c.Worker.Handlers)}
	for _, w := range c.Worker.Command {
		if strings.HasSuffix(w, ".php") {
			roots = append(roots, filepath.Join(filepath.Dir(w), "src"))
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, r := range roots {
		abs, err := filepath.Abs(r)
		if err != nil || seen[abs] {
			continue
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			continue
		}
		seen[abs] = true
		out = append(out, abs)
	}
	return out
}

// startWatch reloads r gracefully when a *.php file under the watched
// directories (see watchRoots; subdirectories too, but not hidden ones,
// vendor or node_modules) is written, created, renamed or removed. Changes
// are debounced by watchDebounce. stop ends the watch and waits for it.
func startWatch(ctx context.Context, c *Config, r aggregator.Reloader, log *zap.Logger) (stop func(), err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	roots := watchRoots(c)
	for _, root := range roots {
		if err := addTree(w, root); err != nil {
			w.Close()
			return nil, err
		}
	}
	log.Info("watch mode: PHP changes reload the workers", zap.Strings("dirs", roots),
		zap.Int("watched_dirs", len(w.WatchList())))

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Close()
		watchLoop(ctx, w, r, log)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}, nil
}

// watchLoop turns file events into debounced reloads until ctx ends.
func watchLoop(ctx context.Context, w *fsnotify.Watcher, r aggregator.Reloader, log *zap.Logger) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	changed := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("watch mode: file watcher error", zap.Error(err))
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					// A new directory: watch it (and what it already holds).
					if err := addTree(w, ev.Name); err != nil {
						log.Warn("watch mode: cannot watch a new directory", zap.String("dir", ev.Name), zap.Error(err))
					}
					continue
				}
			}
			if !strings.HasSuffix(ev.Name, ".php") || ev.Op == fsnotify.Chmod {
				continue
			}
			log.Debug("watch mode: PHP file event", zap.String("file", ev.Name), zap.String("op", ev.Op.String()))
			changed[ev.Name] = true
			timer.Reset(watchDebounce)
		case <-timer.C:
			files := make([]string, 0, len(changed))
			for f := range changed {
				files = append(files, f)
			}
			sort.Strings(files)
			clear(changed)
			log.Info("watch mode: PHP changed, reloading the workers", zap.Strings("files", files))
			r.Reload()
		}
	}
}

// addTree watches dir and its subdirectories.
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return err
			}
			return nil // a subdirectory that vanished or cannot be read
		}
		if !d.IsDir() {
			return nil
		}
		if path != dir && (strings.HasPrefix(d.Name(), ".") || watchSkip[d.Name()]) {
			return filepath.SkipDir
		}
		return w.Add(path)
	})
}
