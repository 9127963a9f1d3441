// Package tfquiet keeps libtensorflow's start-up lines off stderr.
//
// libtensorflow 2.21 prints two lines whenever it is loaded:
//
//	WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
//	I0000 00:00:... port.cc:153] oneDNN custom operations are on. ...
//
// They come from static initialisers of the library (absl logging before any
// absl::InitializeLog), which the dynamic loader runs before the program's own
// code, Go's runtime included; TF_CPP_MIN_LOG_LEVEL does not stop them.
// Importing this package (blank import) in a program linked against
// libtensorflow silences them: a C function in the executable's
// .preinit_array, which the dynamic loader runs before the initialisers of any
// shared library, points fd 2 at /dev/null (keeping a copy of it), and the
// executable's own constructor, which runs after those of the libraries (and
// this package's init, as a fallback), puts the saved fd 2 back. Only what
// the libraries print while they are loaded is lost; everything later,
// TensorFlow's own warnings and errors included, reaches stderr as before.
//
// The lines are kept when the environment variable BBD_VERBOSE is set to
// anything but "" or "0", or when an argument before "--" is "--verbose" or
// "-verbose" (so `bbd --verbose <command>` shows them).
//
// Only programs built with cgo and glibc's dynamic loader run .preinit_array;
// elsewhere the package does nothing.
package tfquiet

/*
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

// bbd_tfquiet_state: 0 nothing done, 1 fd 2 silenced, 2 silenced then
// restored, 3 left alone (verbose asked for).
static int bbd_tfquiet_state = 0;
static int bbd_tfquiet_saved = -1;

// getenv does not work yet when .preinit_array runs (libc's own initialiser
// sets environ later): envp is read directly.
static int bbd_tfquiet_verbose(int argc, char **argv, char **envp) {
	for (char **e = envp; e != NULL && *e != NULL; e++) {
		if (strncmp(*e, "BBD_VERBOSE=", 12) == 0) {
			const char *v = *e + 12;
			if (v[0] != '\0' && strcmp(v, "0") != 0) {
				return 1;
			}
		}
	}
	for (int i = 1; i < argc && argv != NULL && argv[i] != NULL; i++) {
		if (strcmp(argv[i], "--") == 0) {
			break;
		}
		if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-verbose") == 0) {
			return 1;
		}
	}
	return 0;
}

// Runs before the initialisers of every shared library (glibc passes argc,
// argv and envp to .preinit_array functions).
static void bbd_tfquiet_silence(int argc, char **argv, char **envp) {
	if (bbd_tfquiet_verbose(argc, argv, envp)) {
		bbd_tfquiet_state = 3;
		return;
	}
	int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (saved < 0) {
		return; // fd 2 is not open: nothing to silence
	}
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null < 0) {
		close(saved);
		return;
	}
	if (dup2(null, 2) < 0) {
		close(saved);
		close(null);
		return;
	}
	close(null);
	bbd_tfquiet_saved = saved;
	bbd_tfquiet_state = 1;
}

__attribute__((section(".preinit_array"), used))
static void (*bbd_tfquiet_preinit)(int, char **, char **) = bbd_tfquiet_silence;

static void bbd_tfquiet_restore(void) {
	if (bbd_tfquiet_state != 1) {
		return;
	}
	dup2(bbd_tfquiet_saved, 2);
	close(bbd_tfquiet_saved);
	bbd_tfquiet_saved = -1;
	bbd_tfquiet_state = 2;
}

// The executable's constructors run after those of the shared libraries.
__attribute__((constructor))
static void bbd_tfquiet_ctor(void) { bbd_tfquiet_restore(); }

static int bbd_tfquiet_get_state(void) { return bbd_tfquiet_state; }
*/
import "C"

func init() { C.bbd_tfquiet_restore() } // in case the constructor did not run

// Silenced reports whether the libraries' start-up output was discarded
// (false when verbose output was asked for or the mechanism did not run).
func Silenced() bool { return C.bbd_tfquiet_get_state() == 2 }

// Verbose reports whether verbose output was asked for (BBD_VERBOSE or a
// --verbose argument), so start-up lines were left alone.
func Verbose() bool { return C.bbd_tfquiet_get_state() == 3 }
