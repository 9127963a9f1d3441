//go:build !linux

package safefs

import "os"

// renameNoReplace renames src to dst unless dst exists (checked just before:
// a concurrent writer can still win the race on these systems).
func renameNoReplace(src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return ErrExists
	}
	return os.Rename(src, dst)
}

// exchange swaps src and dst with two renames (no atomic exchange here).
func exchange(src, dst string) error { return exchangeByRenames(src, dst) }

// lockDir opens dir (no locking on these systems: staleness is decided by
// the writer's process id alone).
func lockDir(dir string) (*os.File, error) { return os.Open(dir) }

// processAlive reports whether a process pid exists.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
