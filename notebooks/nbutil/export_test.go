package nbutil

// CaptureDisplay makes Show, ShowEach, ShowTables and ShowReproduction hand
// what they display to png and html instead of the notebook, until the
// returned function restores it.
func CaptureDisplay(png func([]byte), html func(string)) (restore func()) {
	old := display
	display.png, display.html, display.sync = png, html, func() {}
	return func() { display = old }
}

// Computing is the progress callback Reproduction gives its runner.
var Computing = computing
