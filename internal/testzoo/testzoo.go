// Package testzoo gives tests a reduced BadNet zoo (zoo.ReducedConfig) built
// once and shared: the first test that asks builds it into the system's
// temporary folder, under a name derived from the zoo's configuration and
// the source that decides what it holds (package zoo and the triggers of
// package data), and later
// tests, in any package of the same or a later `go test` run, reuse it. A
// file lock keeps two test binaries from building it at once.
//
// BBD_TESTZOO=<folder> makes it use that zoo instead. Only tests use it.
package testzoo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"testing"

	"github.com/bbd-workbench/bbd/zoo"
)

// Reduced returns the folder of the shared reduced zoo (see zoo.Build for
// its layout) and its manifest, building it on first use.
func Reduced(t testing.TB) (string, *zoo.Manifest) {
	t.Helper()
	dir, man, err := build()
	if err != nil {
		t.Fatalf("building the reduced test zoo: %v", err)
	}
	return dir, man
}

var (
	once sync.Once
	key  string
	kerr error
)

func build() (string, *zoo.Manifest, error) {
	cfg := zoo.ReducedConfig()
	once.Do(func() { key, kerr = cacheKey(cfg) }) // once: the sources may change while tests run
	if kerr != nil {
		return "", nil, kerr
	}
	if d := os.Getenv("BBD_TESTZOO"); d != "" { // a zoo of one's choice, for development
		man, err := readManifest(d)
		return d, man, err
	}
	dir := filepath.Join(os.TempDir(), "bbd-testzoo-"+key)
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", nil, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if man, err := readManifest(dir); err == nil {
		return dir, man, nil
	}
	os.RemoveAll(dir) // a build that did not finish
	man, err := zoo.Build(dir, cfg)
	if err != nil {
		return "", nil, err
	}
	return dir, man, nil
}

func readManifest(dir string) (*zoo.Manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	man := &zoo.Manifest{}
	if err := json.Unmarshal(raw, man); err != nil {
		return nil, err
	}
	return man, nil
}

// cacheKey hashes the configuration and the Go source that decides the zoo's
// content (package zoo, data's triggers and poisoning), so that a change to
// them builds a new zoo. (Hashing every package it uses would rebuild it at
// each edit of, say, a file reader; CI always starts from an empty cache.)
func cacheKey(cfg zoo.Config) (string, error) {
	h := sha256.New()
	js, _ := json.Marshal(cfg)
	h.Write(js)
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	for _, pattern := range []string{"zoo/*.go", "data/trigger.go", "data/fashion*.go", "data/idx.go"} {
		files, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			return "", err
		}
		sort.Strings(files)
		for _, f := range files {
			if filepath.Ext(f) == ".go" && !isTest(f) {
				raw, err := os.ReadFile(f)
				if err != nil {
					return "", err
				}
				fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(raw))
				h.Write(raw)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func isTest(f string) bool { return len(f) > 8 && f[len(f)-8:] == "_test.go" }
