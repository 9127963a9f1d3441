// Package plots draws the figures of bbd (the paper's and its own) with gonum/plot,
// for the notebooks (through notebooks/nbutil) and the bbd command (bbd reproduce)
// alike, so that both show the same figures and the command need not import the
// notebooks' helpers.
//
// Each function checks its input (errors name the function and the bad value; nothing
// panics) and returns a Figure, which renders to PNG (at DPI dots per inch) or SVG at
// a size fixed by the function (4x3 inch tiles for Lines), and saves both atomically.
// The output is deterministic: the same input gives the same bytes, which the tests
// check against golden images in testdata (go test ./plots -update rewrites them).
//
// The figures of the BBD paper it draws:
//
//   - Figures 1-2, clean accuracy and attack success against the pruned fraction
//     (pruning, fine-pruning), one panel per BadNet: Lines (also training curves);
//     bars comparing models and defences: GroupedBars.
//   - Figure 3, STRIP's entropies of clean and poisoned inputs and the threshold:
//     Histograms.
//   - Figure 4 and Table 3, Neural Cleanse: the reversed patterns and masks are images
//     (nbutil.ImageGrid); the anomaly index per label that flags the targeted labels:
//     AnomalyIndex.
//   - Figure 9, last hidden layer activations of clean and poisoned inputs on their
//     top principal components: Scatter.
//
// Compose lays out plots of a caller's own (gonum/plot Plots) with the same title,
// tiles and shared legend; nbutil's top-k charts use it.
package plots
