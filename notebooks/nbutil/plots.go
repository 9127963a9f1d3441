package nbutil

import (
	"fmt"

	"github.com/bbd-workbench/bbd/plots"
)

// The chart types are package plots' own, so notebooks and the bbd command draw the
// same figures.
type (
	Series    = plots.Series
	LinePanel = plots.LinePanel
	BarSeries = plots.BarSeries
)

// LineCharts draws panels side by side (cols per row) and returns the PNG bytes; see
// plots.Lines.
func LineCharts(title string, panels []LinePanel, cols int) ([]byte, error) {
	return pngOf(plots.Lines(title, panels, cols))
}

// GroupedBarChart draws one group of bars per entry of groups and returns the PNG
// bytes; see plots.GroupedBars.
func GroupedBarChart(title, yLabel string, groups []string, series []BarSeries) ([]byte, error) {
	return pngOf(plots.GroupedBars(title, yLabel, groups, series))
}

// pngOf renders a figure as PNG, passing on the error of the function that drew it.
func pngOf(f *plots.Figure, err error) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("nbutil: %w", err)
	}
	return f.PNG()
}
