// Package browser drives Debian's headless Chromium for the tests that look at
// a page as a person would: a notebook rendered by JupyterLab, the HTML report.
//
// Chromium is /usr/bin/chromium (Debian's package, installed by `make setup`)
// unless $BBD_CHROMIUM names another binary. Every run gets a fresh profile in
// a temporary folder, the flags a root sandbox without a GPU or a D-Bus needs
// (--headless --no-sandbox --disable-gpu ...), and a host resolver that finds
// no host but this machine's, so a page's links to the internet (a CDN's
// script) fail at once instead of leaving the machine. Chromium and all its
// child processes run in their own process group, which is killed when the
// call returns or its context ends; a context without a deadline gets
// DefaultTimeout.
//
// Two ways in:
//
//   - DumpDOM runs `chromium --dump-dom` with a virtual-time budget: the DOM
//     after the page's scripts ran, for simple pages.
//   - Open starts Chromium with --remote-debugging-pipe and speaks the Chrome
//     DevTools Protocol over that pipe (JSON messages ended by a NUL byte, no
//     websocket and no module dependency). A Page evaluates JavaScript
//     (Eval), polls a condition until it holds (WaitFor, for script-built
//     pages such as JupyterLab), lists its images with whether they decoded
//     (Images) and takes screenshots. Screenshot, Images and ImagesLoaded are
//     one-call forms of these for a URL (file:// URLs too).
package browser
