package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	tf "github.com/galeone/tensorflow/tensorflow/go"
)

// versionInfo is what bbd version prints (--json: as one object).
type versionInfo struct {
	BBD           string `json:"bbd"`                // module version ("(devel)" for a checkout build)
	Revision      string `json:"revision,omitempty"` // VCS revision the binary was built from
	Modified      bool   `json:"modified,omitempty"` // built with uncommitted changes
	Go            string `json:"go"`
	TensorFlow    string `json:"libtensorflow"`
	TensorFlowLib string `json:"libtensorflow_path,omitempty"` // the loaded library file
}

func currentVersion() versionInfo {
	v := versionInfo{BBD: "(unknown)", Go: runtime.Version(), TensorFlow: tf.Version(), TensorFlowLib: loadedLibrary("libtensorflow_cc.so")}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.BBD = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

// loadedLibrary returns the path of the first shared library mapped into
// this process whose file name contains name ("" if none or unknown).
func loadedLibrary(name string) string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && strings.Contains(fields[len(fields)-1], name) {
			return fields[len(fields)-1]
		}
	}
	return ""
}

// runVersion: bbd version [--json]
func runVersion(c *cmdEnv, args []string) error {
	asJSON := c.flags.Bool("json", false, "print the versions as one JSON object")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("version takes no arguments, got %q", pos)
	}
	v := currentVersion()
	if *asJSON {
		return json.NewEncoder(c.stdout).Encode(v)
	}
	line := "bbd " + v.BBD
	if v.Revision != "" {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += ", revision " + rev
		if v.Modified {
			line += " (modified)"
		}
	}
	fmt.Fprintf(c.stdout, "%s, built with %s\n", line, v.Go)
	lib := ""
	if v.TensorFlowLib != "" {
		lib = " (" + v.TensorFlowLib + ")"
	}
	fmt.Fprintf(c.stdout, "libtensorflow %s%s\n", v.TensorFlow, lib)
	return nil
}
