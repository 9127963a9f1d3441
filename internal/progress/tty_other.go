//go:build !linux

package progress

import "os"

// isTerminal falls back on the character-device bit (which /dev/null also
// has: a bar drawn into it is harmless).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
